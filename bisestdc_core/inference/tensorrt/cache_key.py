"""The engine cache: what identifies a build, where it lives, and whether a cached file is
still the engine its sidecar describes (pure Python; no TensorRT needed).

``<engine>.json`` beside each engine records the key (:data:`CACHE_KEY_FIELDS`) and the
engine file's size and sha256. A valid engine is reused; a stale one (a key field changed) or a
damaged one (size or sha256 differ: a truncated copy, a build killed mid-write by an older
version) is rebuilt with one log line naming why. Engines are not portable across GPUs or
TensorRT versions, hence the GPU and version in the key. The sidecar is written atomically,
after the engine, so a reader that finds a sidecar finds the whole engine it describes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bisestdc_core.artefacts import file_sha256
from bisestdc_core.inference.model_files import read_engine_sidecar, write_engine_sidecar
from bisestdc_core.inference.registry import ENGINES
from bisestdc_core.inference.tensorrt.options import DEFAULT_WORKSPACE_MB

# Every field that makes a serialised engine unusable (or a different build) when it changes.
# Precision flags: FP16 is set for fp16 and int8 (int8 falls back to fp16); int8_scales says
# explicit (QDQ graph) or implicit (calibrator) quantization and where the scales came from.
CACHE_KEY_FIELDS = (
    "onnx_sha256", "gpu_name", "compute_capability", "tensorrt_version", "precision",
    "input_shape", "int8_scales", "workspace_mb", "dla_core",
)


def engine_cache_key(
    onnx_sha256: str, gpu: Mapping[str, Any], tensorrt_version: str, precision: str,
    input_shape: Sequence[int], *, int8_scales: Mapping[str, Any] | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB, dla_core: int = -1,
) -> dict[str, Any]:
    """The dict that identifies an engine build.

    Args:
        onnx_sha256: hex digest of the ONNX file the engine is built from.
        gpu: ``{"name": str, "compute_capability": [major, minor]}`` (see
            :func:`.platform.gpu_info`).
        tensorrt_version: ``tensorrt.__version__``.
        precision: fp16, fp32 or int8.
        input_shape: N x H x W x 3 of the input the engine is built for.
        int8_scales: int8 only (required there): ``{"quantization": "explicit", "qdq_sha256":
            ...}`` or ``{"quantization": "implicit", "source": {...}}`` (see
            :func:`.calibration.int8_scales`).
        workspace_mb: the builder's workspace limit (it changes the kernels chosen).
        dla_core: -1 for the GPU, else the DLA core.
    """
    check_precision(precision)
    if (precision == "int8") != (int8_scales is not None):
        raise ValueError("int8_scales must be given for int8 engines, and only for them")
    return {
        "onnx_sha256": str(onnx_sha256),
        "gpu_name": str(gpu["name"]),
        "compute_capability": [int(v) for v in gpu["compute_capability"]],
        "tensorrt_version": str(tensorrt_version),
        "precision": precision,
        "input_shape": [int(v) for v in input_shape],
        "int8_scales": dict(int8_scales) if int8_scales is not None else None,
        "workspace_mb": int(workspace_mb),
        "dla_core": int(dla_core),
    }


def check_precision(precision: str) -> None:
    """The precisions the registry lists for the tensorrt engine, and no other."""
    precisions = ENGINES["tensorrt"].precisions
    if precision not in precisions:
        raise ValueError(f"precision must be one of {precisions}, got {precision!r}")


def stale_fields(stored: Mapping[str, Any] | None, expected: Mapping[str, Any]) -> list[str]:
    """Human-readable reasons why a cached engine does not match ``expected``; [] if valid.

    Each reason names the key and both values, e.g. ``gpu_name: 'Orin' -> 'NVIDIA H100'``.
    """
    if stored is None:
        return ["no cache sidecar"]
    reasons = []
    for key in CACHE_KEY_FIELDS:
        if key not in stored:
            reasons.append(f"{key}: missing from sidecar")
        elif stored[key] != expected[key]:
            reasons.append(f"{key}: {stored[key]!r} -> {expected[key]!r}")
    return reasons


def engine_file_problems(engine_path: str | os.PathLike,
                         sidecar: Mapping[str, Any]) -> list[str]:
    """Why ``engine_path`` is not the file its sidecar describes (size, then sha256); []."""
    engine_path = Path(engine_path)
    if "engine_size" not in sidecar or "engine_sha256" not in sidecar:
        # Every build records both; a sidecar written without them (by hand, by a tool that
        # only describes engines) has nothing to check the file against. Sidecars of older
        # bisestdc builds lack newer key fields too, so the cache rebuilds them anyway.
        return []
    size = engine_path.stat().st_size
    if size != sidecar["engine_size"]:
        return [f"engine file is {size} bytes, its sidecar says {sidecar['engine_size']} "
                "(truncated or replaced)"]
    if file_sha256(engine_path) != sidecar["engine_sha256"]:
        return ["engine file sha256 differs from its sidecar's (damaged or replaced)"]
    return []


def cache_status(engine_path: str | os.PathLike, expected: Mapping[str, Any]) -> list[str]:
    """Reasons to rebuild ``engine_path`` for ``expected``; [] means reuse it."""
    if not Path(engine_path).is_file():
        return ["no engine file"]
    sidecar = read_engine_sidecar(engine_path)
    return stale_fields(sidecar, expected) or engine_file_problems(engine_path, sidecar)


def engine_file_facts(engine_path: str | os.PathLike) -> dict[str, Any]:
    """Size and sha256 of a built engine, recorded in its sidecar to catch damaged files."""
    return {"engine_size": Path(engine_path).stat().st_size,
            "engine_sha256": file_sha256(engine_path)}


def write_cache_sidecar(engine_path: str | os.PathLike, key: Mapping[str, Any],
                        onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Write ``<engine>.json`` (atomically, after the engine): the key, the engine file's size
    and sha256, and the ONNX sidecar it was built from; returns the dict.

    Raises:
        ModelCardError: the ONNX has no readable sidecar.
    """
    return write_engine_sidecar(engine_path, {**key, **engine_file_facts(engine_path)},
                                onnx_path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def default_engine_path(cache_root: Path, key: Mapping[str, Any]) -> Path:
    """A file name that differs whenever the key does: readable parts, plus a short hash of
    the whole key for the fields a name cannot show (int8 scales, workspace, DLA core)."""
    cc = "".join(str(v) for v in key["compute_capability"])
    shape = "x".join(str(v) for v in key["input_shape"][1:3])
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:8]
    device = f"-dla{key['dla_core']}" if key.get("dla_core", -1) >= 0 else ""
    name = (f"{key['onnx_sha256'][:16]}-{shape}-{key['precision']}{device}-"
            f"{_slug(key['gpu_name'])}-sm{cc}-trt{key['tensorrt_version']}-{digest}.engine")
    return cache_root / name


def default_timing_cache_path(cache_root: Path, gpu: Mapping[str, Any],
                              tensorrt_version: str) -> Path:
    """``timing-<gpu>-sm<cc>-trt<version>.cache`` in the engine cache: kernel timings are per
    GPU and TensorRT version, and shared by every engine built there."""
    cc = "".join(str(v) for v in gpu["compute_capability"])
    return cache_root / f"timing-{_slug(str(gpu['name']))}-sm{cc}-trt{tensorrt_version}.cache"


def default_calibration_cache(engine_path: str | os.PathLike, onnx_sha256: str) -> Path:
    """``<engine stem>.<onnx sha256[:16]>.calib`` beside the engine.

    Scales belong to the weights they were measured on: a cache named after the ONNX's hash is
    never reused for an engine rebuilt from new weights.
    """
    engine_path = Path(engine_path)
    return engine_path.with_name(f"{engine_path.stem}.{onnx_sha256[:16]}.calib")
