"""Reading, converting and writing checkpoints.

Three kinds of file load into the networks:

* the project's own checkpoints (``{"format": "bisestdc", "model": ..., "state_dict": ...}``),
* the seed's segmentation checkpoints (``cp.backbone...`` names, aliased stage views,
  optionally wrapped in ``{"state_dict": ...}`` and/or prefixed ``module.``),
* the ImageNet STDC backbone files (``features.N...`` names, classifier tensors unused).

Loading is all or nothing: a missing, unexpected, mis-shaped or non-finite tensor raises
:class:`CheckpointError` naming the file and the first offending tensors. Files are read with
``torch.load(weights_only=True)``, so a checkpoint can never execute code, and only after every
record of the zip container passed its CRC-32 check, so a flipped bit cannot load as a
different network (torch's own reader does not check them). A project checkpoint's card
(:class:`bisestdc_core.model_card.ModelCard`: model, class count, mean/std, network size) is
checked against bounds before any network is built for it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bisestdc_core.artefacts import atomic_path
from bisestdc_core.errors import CheckpointError
from bisestdc_core.model_card import ModelCard, ModelCardError
from bisestdc_core.models.registry import MODEL_REGISTRY
from bisestdc_core.models.seed_keys import is_seed_state_dict
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD
from bisestdc_core.safe_files import require_regular_file

log = logging.getLogger(__name__)

PROJECT_FORMAT = "bisestdc"
_SHOW = 5  # offending tensors named in an error message
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6; older files are pickles


def _verified_records(path: Path) -> io.BytesIO | None:
    """The zip checkpoint's records, each checked against its CRC-32, in a fresh container.

    torch's zip reader checks no CRC, and it reads fields of the container that Python's
    zipfile ignores (a flipped bit in a record's attributes makes it load uninitialised memory
    as a tensor). So the records are read and checked with zipfile and torch loads them from a
    container written here: what torch sees is exactly the verified bytes. Costs one in-memory
    copy of the file.

    Returns:
        The verified copy, or None for torch's legacy (pre-1.6, non-zip) pickle format, which
        carries no checksum (its tensors are still checked for non-finite values on loading).

    Raises:
        CheckpointError: a record whose bytes fail their CRC, or a broken container.
    """
    with open(path, "rb") as f:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            log.debug("%s: legacy (non-zip) checkpoint, no checksums to verify", path)
            return None
    copy = io.BytesIO()
    try:
        with zipfile.ZipFile(path) as source, \
                zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as verified:
            for record in source.infolist():
                # torch stores records uncompressed; a compressed one could inflate without
                # bound (a zip bomb), so only the stored bytes are ever read.
                if record.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError(
                        f"{path}: record {record.filename!r} is compressed; torch checkpoints "
                        "store records uncompressed")
                verified.writestr(record.filename, source.read(record))  # read checks the CRC
    except CheckpointError:
        raise
    # zipfile's ways of saying "corrupt": bad CRC or headers, impossible sizes, flags claiming
    # encryption (RuntimeError) or features it lacks.
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
            NotImplementedError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None
    copy.seek(0)
    return copy


def read_file(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True of the file's CRC-verified records (see
    _verified_records); errors name the file and the problem."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(f"{path}: no such checkpoint file")
    # A FIFO would block open() forever, a device read without end: stat first, never open.
    require_regular_file(path, "checkpoint", CheckpointError)
    verified = _verified_records(path)
    source = path if verified is None else verified
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; all mean "unreadable"
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def unwrap_state_dict(obj: Any, path: str | os.PathLike = "<memory>") -> dict[str, torch.Tensor]:
    """Take the tensor dict out of ``{'state_dict': ...}`` and strip DDP's ``module.``."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: holds no state dict (found {type(obj).__name__})")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor")
        state[key.removeprefix("module.")] = value
    return state


# ---- the seed's names -> ours ---------------------------------------------------------------

def convert_seed_state_dict(state: Mapping[str, torch.Tensor], model_name: str) -> dict:
    """Rename a seed segmentation state dict to the module names of network ``model_name``."""
    return MODEL_REGISTRY[model_name].seed_keys.convert(state)


_IMAGENET_UNUSED = re.compile(r"^(x\d+|conv_last|fc|bn|linear)\.")


def convert_imagenet_backbone(state: Mapping[str, torch.Tensor]) -> dict:
    """ImageNet STDC file -> ``backbone.features.*`` names (classifier dropped)."""
    return {
        f"backbone.{k}": v for k, v in state.items() if not _IMAGENET_UNUSED.search(k)
    }


# ---- the card: a project checkpoint's metadata -----------------------------------------------

def validate_card(obj: Mapping[str, Any], path: str | os.PathLike,
                  known_models: Collection[str]) -> ModelCard:
    """Read a project checkpoint's card, checked against bounds before anything is allocated.

    Args:
        obj: the checkpoint dict (``format`` == PROJECT_FORMAT).
        path: the file, named in messages.
        known_models: the network names a card may name.

    Raises:
        CheckpointError: naming the file, the field and the value.
    """
    try:
        card = ModelCard.from_dict(obj, path, known_models)
    except ModelCardError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(obj.get("state_dict"), Mapping):
        shown = repr(obj["state_dict"])[:80] if "state_dict" in obj else "missing"
        raise CheckpointError(f"{path}: card field 'state_dict' = {shown}: must be a dict of "
                              "tensors")
    return card


# ---- strict loading -------------------------------------------------------------------------

def _check_and_load(
    model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike,
    select: Callable[[str], bool] = lambda _k: True,
) -> None:
    expected = {k: v for k, v in model.state_dict().items() if select(k)}
    # The seed trained with InPlaceABN in some blocks: no num_batches_tracked there.
    missing = [
        k for k in expected if k not in state and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, network {tuple(expected[k].shape)})"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {', '.join(mismatched[:_SHOW])}")
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {', '.join(missing[:_SHOW])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {', '.join(unexpected[:_SHOW])}")
    if problems:
        raise CheckpointError(
            f"{path}: does not fit {type(model).__name__}: " + "; ".join(problems)
        )
    # Weights that are NaN or infinite give constant labels with status OK: refused instead.
    nonfinite = [
        k for k, v in state.items()
        if v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if nonfinite:
        raise CheckpointError(
            f"{path}: {len(nonfinite)} tensor(s) with NaN or infinite values: "
            f"{', '.join(nonfinite[:_SHOW])}")
    full = dict(model.state_dict())
    for k, v in state.items():
        full[k] = v.to(full[k].dtype)
    model.load_state_dict(full, strict=True)


def load_weights(model: nn.Module, path: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """Load a project or seed segmentation checkpoint file into ``model`` (all or nothing).

    Returns:
        The project checkpoint's metadata (empty for seed files).
    """
    return load_checkpoint_object(model, read_file(path), path, model_name)


def load_checkpoint_object(
    model: nn.Module, obj: Any, path: str | os.PathLike, model_name: str
) -> dict[str, Any]:
    """``load_weights`` for a checkpoint already read with :func:`read_file` (``path`` names
    it in messages), so that callers who looked inside the file need not read it again."""
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == PROJECT_FORMAT:
        meta = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer", "scaler")}
        if meta.get("model") not in (None, model_name):
            raise CheckpointError(
                f"{path}: holds a {meta['model']!r} network, not {model_name!r}"
            )
        validate_card(obj, path, known_models=(model_name,))
    state = unwrap_state_dict(obj, path)
    if is_seed_state_dict(state):
        state = convert_seed_state_dict(state, model_name)
    _check_and_load(model, state, path)
    log.info("loaded %s weights from %s", model_name, path)
    return meta


def load_backbone_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load an ImageNet STDC backbone file into ``model.backbone.features`` (all of it)."""
    state = convert_imagenet_backbone(unwrap_state_dict(read_file(path), path))
    _check_and_load(model, state, path, select=lambda k: k.startswith("backbone.features."))
    log.info("loaded ImageNet backbone from %s (detail branch and heads stay initialised)", path)


# ---- writing --------------------------------------------------------------------------------

CHECKPOINT_MODE = 0o644


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never half a file; the
    temp file's name (``.NAME.PID.RANDOM.tmp``) lets a later run remove it
    (:func:`bisestdc_core.artefacts.remove_stale_temps`).
    """
    with atomic_path(path, CHECKPOINT_MODE) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def make_checkpoint(
    model: nn.Module, model_name: str, class_set: str, half: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
    network_size: Sequence[int] | None = None, eval_scale: float | None = None,
    **training_state: Any,
) -> dict[str, Any]:
    """The project's checkpoint dict for ``model`` (optionally with fp16 tensors): its card's
    keys (see :class:`ModelCard`), the tensors, and ``training_state`` (iteration, optimizer,
    metrics...) as given."""
    card = ModelCard(
        model=model_name, num_classes=int(model.num_classes), class_set=class_set,
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
        network_size=tuple(int(v) for v in network_size) if network_size else None,
        eval_scale=eval_scale)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    return {"format": PROJECT_FORMAT, **card.to_dict(), "state_dict": state, **training_state}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, model_name: str,
                    class_set: str, half: bool = False, **extra: Any) -> None:
    atomic_save(make_checkpoint(model, model_name, class_set, half=half, **extra), path)
