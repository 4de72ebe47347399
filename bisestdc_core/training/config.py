"""Training configuration: YAML files validated into typed dataclasses.

A config file holds the sections below; any key can be overridden on the command line with
``section.key=value`` (the value is parsed as YAML). Unknown keys and values of the wrong type
stop with a message naming the key, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used."""


@dataclass
class ModelConfig:
    name: str = "bisestdc"  # bisestdc | stdc1 | stdc2
    num_classes: int = 19
    backbone_weights: str | None = None  # ImageNet STDC file
    weights: str | None = None  # start from a full checkpoint (fine-tuning)


@dataclass
class DataConfig:
    dataset: str = "cityscapes"  # cityscapes | camvid | synthetic (labelled splits)
    root: str = "data/cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    crop_size: list[int] = field(default_factory=lambda: [512, 1024])  # H, W
    scales: list[float] = field(
        default_factory=lambda: [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.125,
                                 1.25, 1.375, 1.5]
    )
    jitter: float = 0.5  # brightness, contrast and saturation
    batch_size: int = 6  # per process
    workers: int = 4
    eval_scale: float = 0.5


@dataclass
class OptimConfig:
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_mult: float = 10.0  # FFM and heads
    warmup_iters: int = 1000
    warmup_start_lr: float = 1e-5
    power: float = 0.9


@dataclass
class LossConfig:
    ohem_thresh: float = 0.7
    ohem_min_kept_ratio: float = 0.0625  # 1/16 of batch*H*W
    aux_weight: float = 0.3
    detail_weight: float = 1.0


@dataclass
class TrainConfig:
    max_iters: int = 160000
    amp: str = "bf16"  # none | bf16 | fp16 (CUDA only; CPU trains in fp32)
    channels_last: bool = True
    seed: int = 0
    out_dir: str = "runs/bisestdc"
    log_every: int = 50
    eval_every: int = 5000  # 0 disables periodic evaluation
    ckpt_every: int = 1000
    eval_max_images: int = 0  # 0: the whole val split
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    ("model", "name"): ("bisestdc", "stdc1", "stdc2"),
    # No "folder": an image folder has no splits, so training and validation would coincide.
    ("data", "dataset"): ("cityscapes", "camvid", "synthetic"),
    ("train", "amp"): ("none", "bf16", "fp16"),
    ("train", "device"): ("auto", "cpu", "cuda"),
}


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` coerced to ``annotation`` (int -> float allowed) or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(where, value, inner[0])
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(f"{where}[{i}]", v, item_type) for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "1e-5" (no dot) as a string; accept what Python reads as a number.
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{prefix}{key}' (known: {sorted(known)})")
    kwargs = {}
    for name, value in values.items():
        where = f"{source}: '{prefix}{name}'"
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping, got {value!r}")
            kwargs[name] = _build(hints[name], value, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(where, value, hints[name])
    return cls(**kwargs)


def _validate(cfg: Config, source: str) -> None:
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(
                f"{source}: '{section}.{key}' must be one of {choices}, got {value!r}"
            )
    if len(cfg.data.crop_size) != 2 or min(cfg.data.crop_size) <= 0:
        raise ConfigError(f"{source}: 'data.crop_size' must be [height, width] > 0")
    for key in ("batch_size",):
        if getattr(cfg.data, key) <= 0:
            raise ConfigError(f"{source}: 'data.{key}' must be positive")
    if cfg.train.max_iters <= 0:
        raise ConfigError(f"{source}: 'train.max_iters' must be positive")
    if cfg.model.num_classes <= 0:
        raise ConfigError(f"{source}: 'model.num_classes' must be positive")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        dotted, text = item.split("=", 1)
        parts = dotted.strip().split(".")
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
    return raw


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
        raw.pop("_base_notes", None)
    raw = apply_overrides(raw, list(overrides))
    cfg = _build(Config, raw, source, "")
    _validate(cfg, source)
    return cfg


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
