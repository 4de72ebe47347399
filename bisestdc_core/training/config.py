"""Training configuration: YAML files validated into typed dataclasses.

A config file holds the sections below; any key can be overridden on the command line with
``section.key=value`` (the value is parsed as YAML). Every field has a type and, for numbers and
lists, a range (``bounded``): unknown keys, wrong types and values out of range stop with a
one-line :class:`ConfigError` naming the key, before any work starts.

The dataclass defaults are the seed's Cityscapes recipe. A file may name another with
``base: FILE`` (relative to itself): it holds then only what differs from that file, merged
key by key into the base's sections (lists and values replace the base's), so a value shared by
a family of configs is written once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bisestdc_core.artefacts import atomic_write_text
from bisestdc_core.classes import MAX_CLASSES
from bisestdc_core.data.registry import TRAINABLE_DATASETS
from bisestdc_core.errors import UsageError, one_line
from bisestdc_core.models import MODEL_REGISTRY
from bisestdc_core.safe_files import check_text_limits, read_limited_yaml


class ConfigError(UsageError):
    """A config file or override that cannot be used."""


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a number (or of every item of a list of numbers).

    ``gt``/``ge`` and ``lt``/``le`` are exclusive/inclusive limits; numbers must also be
    finite. ``min_len``/``max_len`` bound a list's length.
    """

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_len: int | None = None
    max_len: int | None = None

    def describe(self, kind: str = "a finite number") -> str:
        parts = [f"> {self.gt:g}" if self.gt is not None else "",
                 f">= {self.ge:g}" if self.ge is not None else "",
                 f"< {self.lt:g}" if self.lt is not None else "",
                 f"<= {self.le:g}" if self.le is not None else ""]
        return f"{kind} " + " and ".join(p for p in parts if p) if any(parts) else kind

    def accepts(self, value: float) -> bool:
        return (math.isfinite(value)
                and (self.gt is None or value > self.gt)
                and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt)
                and (self.le is None or value <= self.le))


def bounded(default: Any, doc: str = "", **limits: float) -> Any:
    """A dataclass field whose value (or list items) must lie within ``Bounds(**limits)``."""
    meta = {"bounds": Bounds(**limits), "doc": doc}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def text(default: str | None, doc: str = "") -> Any:
    """A string field that must not be empty (None stays allowed where the type allows it)."""
    return field(default=default, metadata={"non_empty": True, "doc": doc})


# Limits that keep a typo from costing memory or time before anything is checked: no crop,
# batch or class count beyond these trains on any GPU this project targets.
MAX_CROP_SIDE = 8192
MAX_BATCH = 4096
MAX_ITERS = 100_000_000


@dataclass
class ModelConfig:
    name: str = "bisestdc"  # a name of bisestdc_core.models.MODEL_REGISTRY
    num_classes: int = bounded(19, ge=1, le=MAX_CLASSES)
    backbone_weights: str | None = text(None, "ImageNet STDC file")
    weights: str | None = text(None, "start from a full checkpoint (fine-tuning)")


@dataclass
class DataConfig:
    dataset: str = "cityscapes"  # one of data.registry.TRAINABLE_DATASETS (labelled splits)
    root: str = text("data/cityscapes")
    train_split: str = text("train")
    val_split: str = text("val")
    crop_size: list[int] = bounded([512, 1024], "H, W", ge=32, le=MAX_CROP_SIDE,
                                   min_len=2, max_len=2)
    scales: list[float] = bounded(
        [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1.25, 1.375, 1.5],
        "random resize factors", gt=0, le=8, min_len=1)
    jitter: float = bounded(0.5, "brightness, contrast and saturation", ge=0, le=1)
    # Crops centred on these train ids (rare, thin classes) with probability focus_prob.
    focus_classes: list[int] = bounded([], "train ids for class-centred crops", ge=0, lt=255)
    focus_prob: float = bounded(0.0, "share of class-centred crops", ge=0, le=1)
    # Per process; at least 2: batch norm after the context path's global pooling has one
    # value per channel and sample, and cannot train on a single one.
    batch_size: int = bounded(6, "per process", ge=2, le=MAX_BATCH)
    workers: int = bounded(4, ge=0, le=256)
    eval_scale: float = bounded(0.5, ge=0.05, le=8)


@dataclass
class OptimConfig:
    lr: float = bounded(0.01, gt=0, le=10)
    momentum: float = bounded(0.9, ge=0, lt=1)
    weight_decay: float = bounded(5e-4, ge=0, le=1)
    head_lr_mult: float = bounded(10.0, "FFM and heads", gt=0, le=1000)
    warmup_iters: int = bounded(1000, ge=0, le=MAX_ITERS)
    warmup_start_lr: float = bounded(1e-5, gt=0, le=10)
    power: float = bounded(0.9, gt=0, le=10)


@dataclass
class LossConfig:
    ohem_thresh: float = bounded(0.7, "OHEM keeps pixels with p below this", gt=0, le=1)
    ohem_min_kept_ratio: float = bounded(0.0625, "1/16 of batch*H*W", ge=0, le=1)
    aux_weight: float = bounded(0.3, ge=0, le=100)
    detail_weight: float = bounded(1.0, ge=0, le=100)
    # One weight per class for the OHEM cross-entropy of every head (empty: unweighted), e.g.
    # softened inverse frequencies that make thin, rare classes count more.
    class_weights: list[float] = bounded([], "per-class cross-entropy weights", ge=0, le=100)


@dataclass
class TrainConfig:
    max_iters: int = bounded(160000, ge=1, le=MAX_ITERS)
    amp: str = "bf16"  # none | bf16 | fp16 (fp16 on CUDA only; bf16 also on CPUs with bf16)
    channels_last: bool = True
    seed: int = bounded(0, ge=0, lt=2**31)
    out_dir: str = text("runs/bisestdc")
    log_every: int = bounded(50, ge=1, le=MAX_ITERS)
    eval_every: int = bounded(5000, "0 disables periodic evaluation", ge=0, le=MAX_ITERS)
    ckpt_every: int = bounded(1000, ge=1, le=MAX_ITERS)
    eval_max_images: int = bounded(0, "0: the whole val split", ge=0, le=MAX_ITERS)
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


SECTIONS = ("model", "data", "optim", "loss", "train")

CHOICES = {
    ("model", "name"): tuple(MODEL_REGISTRY),
    # Only datasets with labelled splits: training and validation must not coincide.
    ("data", "dataset"): TRAINABLE_DATASETS,
    ("train", "amp"): ("none", "bf16", "fp16"),
    ("train", "device"): ("auto", "cpu", "cuda"),
}


def config_fields() -> list[tuple[str, dataclasses.Field, Any]]:
    """``(section.key, field, type)`` for every config field, in file order."""
    out = []
    for section in SECTIONS:
        cls = typing.get_type_hints(Config)[section]
        hints = typing.get_type_hints(cls)
        out += [(f"{section}.{f.name}", f, hints[f.name]) for f in dataclasses.fields(cls)]
    return out


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` coerced to ``annotation`` (int -> float allowed) or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if value is None and not (origin in (typing.Union, types.UnionType)
                              and type(None) in typing.get_args(annotation)):
        name = getattr(annotation, "__name__", str(annotation))
        raise ConfigError(f"{where}: must be {name}, got null")
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
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def _shown(value: Any) -> str:
    """A value as the message shows it: YAML's ``null`` for None, else its repr."""
    return "null" if value is None else repr(value)


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
            # "model: null" (or an empty "model:") is refused: it reads as a section meant to
            # be there whose content went missing; leave a section out for its defaults.
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: must be a mapping, got {_shown(value)}")
            kwargs[name] = _build(hints[name], value, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(where, value, hints[name])
    return cls(**kwargs)


def _check_field(source: str, key: str, meta: Any, value: Any) -> None:
    if value is None:
        return
    where = f"{source}: '{key}'"
    if meta.get("non_empty") and not str(value).strip():
        raise ConfigError(f"{where} must not be empty")
    bounds = meta.get("bounds")
    if bounds is None:
        return
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list):
        if bounds.min_len is not None and len(value) < bounds.min_len:
            raise ConfigError(f"{where} needs at least {bounds.min_len} item(s), got {value!r}")
        if bounds.max_len is not None and len(value) > bounds.max_len:
            raise ConfigError(f"{where} takes at most {bounds.max_len} item(s), got {value!r}")
    for item in items:
        if not bounds.accepts(item):
            kind = "an integer" if isinstance(item, int) else "a finite number"
            raise ConfigError(f"{where} must be {bounds.describe(kind)}, got {value!r}")


def _validate(cfg: Config, source: str) -> None:
    """Every field within its range, choices among the known ones, and the cross-field rules."""
    for (section, key), choices in CHOICES.items():
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(
                f"{source}: '{section}.{key}' must be one of {choices}, got {value!r}"
            )
    for key, f, _type in config_fields():
        section, name = key.split(".")
        _check_field(source, key, f.metadata, getattr(getattr(cfg, section), name))
    if cfg.optim.warmup_start_lr > cfg.optim.lr:
        raise ConfigError(f"{source}: 'optim.warmup_start_lr' ({cfg.optim.warmup_start_lr:g}) "
                          f"must not exceed 'optim.lr' ({cfg.optim.lr:g})")
    weights = cfg.loss.class_weights
    if weights and len(weights) != cfg.model.num_classes:
        raise ConfigError(f"{source}: 'loss.class_weights' has {len(weights)} values for "
                          f"'model.num_classes' {cfg.model.num_classes}")
    if weights and not any(weights):
        raise ConfigError(f"{source}: 'loss.class_weights' are all 0 (nothing would be learnt)")


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
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"override {dotted.strip()!r}: value longer than "
                              f"{MAX_CONFIG_BYTES} bytes")
        check_text_limits(text, f"override {dotted.strip()!r}", ConfigError, MAX_CONFIG_DEPTH)
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"override {item!r}: value is not valid YAML ({one_line(exc)})") from exc
    return raw


BASE_KEY = "base"

# A config is a few kB, two levels deep; these refuse a wrong file (or a hostile one: 3000
# brackets make the YAML parser recurse for half a minute, then crash) before parsing.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32


def _read_mapping(path: Path) -> dict[str, Any]:
    """One config file's own mapping (its ``base`` key included, not yet resolved)."""
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"{path}: config file not found")
    raw = read_limited_yaml(path, "config file", MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, ConfigError)
    if raw is None:
        return {}  # an empty file: all defaults
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return raw


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw sections of a config file with its ``base`` chain resolved.

    Raises:
        ConfigError: a file of the chain is missing, unreadable or not a mapping, a ``base``
            is not a file name, or the chain comes back to a file already in it (the message
            names the files of the cycle).
    """
    chain: list[Path] = []
    layers: list[dict[str, Any]] = []
    path = Path(path)
    while True:
        # realpath, unlike resolve(), never raises (a symlink loop is refused when read).
        if os.path.realpath(path) in [os.path.realpath(p) for p in chain]:
            cycle = " -> ".join(str(p) for p in [*chain, path])
            raise ConfigError(f"{chain[-1]}: '{BASE_KEY}' makes a cycle: {cycle}")
        chain.append(path)
        raw = _read_mapping(path)
        base = raw.pop(BASE_KEY, None)
        layers.append(raw)
        if base is None:
            break
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{path}: '{BASE_KEY}' must name a config file, got {base!r}")
        path = path.parent / base
    resolved: dict[str, Any] = {}
    for layer in reversed(layers):
        resolved = merge(resolved, layer)
    return resolved


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None), its ``base`` files first,
    and apply overrides."""
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        raw = read_config_file(path)
    raw = apply_overrides(raw, list(overrides))
    cfg = _build(Config, raw, source, "")
    _validate(cfg, source)
    return cfg


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically: a resumed run never reads half a config)."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
