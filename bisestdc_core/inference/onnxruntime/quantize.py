"""Static int8 quantization of exported graphs into explicitly quantized (QDQ) ONNX.

The input is an fp32 graph from :mod:`bisestdc_core.cli.export` (uint8 frame in, uint8 labels
out); the output keeps that interface and puts QuantizeLinear/DequantizeLinear pairs around the
network's operators, with per-channel int8 weights and activation ranges calibrated (min/max)
on real frames. The in-graph preprocessing (cast, channel flip, resize, normalisation) and the
postprocessing (argmax, casts, label resize) stay float: they are cheap and exact.

Two targets, because the runtimes want different activation encodings:

* ``onnxruntime`` (CPU): uint8 activations with a zero point. A ReLU then folds into the
  quantization range, so ONNX Runtime fuses every convolution into one ``QLinearConv``.
  Measured here: signed symmetric activations leave every ReLU in float between
  Quantize/Dequantize pairs and are no faster than fp32.
* ``tensorrt``: int8 activations and weights with zero point 0, the only QDQ encoding
  TensorRT builds int8 engines from (TensorRT 8.5+, and 10 where implicit calibration is
  deprecated).

Layers that may stay float (``FLOAT_CANDIDATES``: the stem convolution, the last head
convolution, the logits' final resize) are chosen by measurement: each candidate is kept float
only if that raises label agreement with the fp32 graph on held-out frames by at least
``min_gain``. The sidecar records the choice and the figures behind it.

The command line is ``bisestdc-quantize`` (:mod:`bisestdc_core.cli.quantize`).
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from tqdm import tqdm

from bisestdc_core.artefacts import atomic_path, file_sha256, remove_stale_temps, sidecar_path
from bisestdc_core.inference.base import prepare_frame
from bisestdc_core.inference.calibration_data import calibration_source
from bisestdc_core.inference.model_files import onnx_card, read_sidecar, write_sidecar
from bisestdc_core.inference.onnxruntime.engine import OnnxRuntimeEngine
from bisestdc_core.inference.onnxruntime.qdq_rewrites import (
    average_pools_as_depthwise_convs,
    shapes_from_quantized_tensors,
)
from bisestdc_core.model_card import ModelCard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantTarget:
    """How activations are encoded for one runtime (weights are always symmetric int8)."""

    activation_type: QuantType
    symmetric_activations: bool
    # TensorRT (8.5 to 10) reads quantized weights as Q -> DQ pairs on float weights and keeps
    # biases float (it has no int32 bias input); ONNX Runtime wants int8 weight constants and
    # int32 biases, which it folds into QLinearConv.
    weights_as_qdq_pairs: bool = False
    quantize_bias: bool = True
    # ONNX Runtime's pre-quantization optimisation folds shape arithmetic into constants (no
    # dequantization just to read a shape), but also merges the export's two label casts
    # (int64 -> float -> uint8) into one int64 -> uint8 cast that TensorRT's parser refuses.
    optimize_first: bool = True
    # Rewrites for ONNX Runtime's CPU kernels (see .qdq_rewrites); TensorRT fuses on its own.
    onnxruntime_rewrites: bool = False


TARGETS = {
    "onnxruntime": QuantTarget(QuantType.QUInt8, symmetric_activations=False,
                               onnxruntime_rewrites=True),
    "tensorrt": QuantTarget(QuantType.QInt8, symmetric_activations=True,
                            weights_as_qdq_pairs=True, quantize_bias=False,
                            optimize_first=False),
}
FLOAT_CANDIDATES = ("stem", "head", "logits_resize")
# What the measurement chose for the demo checkpoint (benchmarks/int8_accuracy.md): used when a
# graph is quantized on the fly (Segmenter), where there are no held-out frames to measure on.
DEFAULT_FLOAT_LAYERS: tuple[str, ...] = ()
DEFAULT_CALIB_COUNT = 32
# Part of cached int8 file names: raise it when the recipe changes so stale copies are not reused.
RECIPE_VERSION = 3
DEFAULT_SELECT_COUNT = 8
# 0.2 percentage points of label agreement: a float layer costs its convert-to-float and its
# float kernel (BiSeSTDC-Seg's float head and resize: 0.8 ms, 3 % of its int8 time at 256x512,
# benchmarks/int8_profile.txt); below 0.2 points of agreement (the accuracy targets leave
# several points) that time buys too little.
DEFAULT_MIN_GAIN = 2e-3


# ---- the graph's parts ----------------------------------------------------------------------

def network_nodes(model: onnx.ModelProto) -> tuple[dict[str, str], list[str]]:
    """The candidate layers by role, and the pre/postprocessing nodes that always stay float.

    Nodes are topologically sorted in an ONNX graph, so everything before the first Conv is
    preprocessing and everything after the last Conv is the head's upsampling and argmax.

    Returns:
        ``({role: node name}, [names of nodes never quantized])``.
    """
    nodes = list(model.graph.node)
    conv_at = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if not conv_at:
        raise ValueError("the graph has no Conv node: not a segmentation network export")
    first, last = conv_at[0], conv_at[-1]
    roles = {"stem": nodes[first].name, "head": nodes[last].name}
    resize = next((n for n in nodes[last + 1:] if n.op_type == "Resize"), None)
    if resize is not None:
        roles["logits_resize"] = resize.name
    fixed_float = [n.name for n in nodes[:first]]
    fixed_float += [n.name for n in nodes[last + 1:] if n is not resize]
    return roles, fixed_float


def tensorrt_qdq_problems(model: onnx.ModelProto) -> list[str]:
    """What in a QDQ graph TensorRT's explicit quantization would refuse (empty: nothing).

    TensorRT builds int8 from QuantizeLinear/DequantizeLinear pairs with int8 zero points equal
    to 0 and positive float scales, per-tensor or per output channel (axis 0) for weights, and
    no int32 (bias) dequantization (TensorRT developer guide, "Explicit Quantization"). The
    graph's other operators are the fp32 export's, checked by the export's own TensorRT
    conformance rules.
    """
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = values.get(node.input[1])
        zero = values.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None or scale.dtype != np.float32 or not (scale > 0).all():
            problems.append(f"{node.name}: scale must be a positive float32 constant")
        if zero is None or zero.dtype != np.int8 or zero.any():
            problems.append(f"{node.name}: zero point must be an int8 constant 0")
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale is not None and scale.size > 1 and axis != 0:
            problems.append(f"{node.name}: per-channel quantization on axis {axis}, not 0")
    return problems


# ---- calibration ----------------------------------------------------------------------------

class FrameReader(CalibrationDataReader):
    """Feeds RGB frames to a graph's uint8 input in its channel order and input size."""

    def __init__(self, frames: Sequence[np.ndarray], input_name: str, channel_order: str,
                 input_hw: Sequence[int] | None):
        self._frames = frames
        self._input_name = input_name
        self._channel_order = channel_order
        self._input_hw = input_hw
        self._index = 0
        self._progress = tqdm(total=len(frames), desc="calibrating", unit="frame", leave=False)

    def rewind(self) -> None:
        """Start again from the first frame (another calibration pass)."""
        self._progress.close()
        self._index = 0
        self._progress = tqdm(total=len(self._frames), desc="calibrating", unit="frame",
                              leave=False)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= len(self._frames):
            self._progress.close()
            return None
        frame = self._frames[self._index]
        self._index += 1
        self._progress.update()
        return {self._input_name: prepare_frame(frame, "rgb", self._channel_order,
                                                self._input_hw)}


def graph_input(model: onnx.ModelProto) -> tuple[str, tuple[int, int] | None]:
    """Input name and its fixed (H, W), or None when H/W are symbolic."""
    inp = model.graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    fixed = all(d.HasField("dim_value") for d in dims[1:3])
    return inp.name, (dims[1].dim_value, dims[2].dim_value) if fixed else None


# ---- quantization ---------------------------------------------------------------------------

# ONNX Runtime 1.23 (the last with Python 3.10 wheels) cannot keep calibrated ranges in a file.
_RANGE_CACHE = "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _quantize(prepared: Path, out: Path, reader: FrameReader, target: QuantTarget,
              exclude: list[str], cache: Path) -> None:
    """One quantize_static call; ranges come from ``cache`` when it exists (calibrate once),
    else, where ONNX Runtime keeps no such file, from another pass over the frames."""
    if _RANGE_CACHE:
        options: dict[str, Any] = {"calibration_cache_path": str(cache)}
        data = None if cache.exists() else reader
    else:
        options, data = {}, reader
        reader.rewind()
    quantize_static(
        str(prepared), str(out), data, quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=target.activation_type, weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": target.symmetric_activations,
                       "WeightSymmetric": True,
                       "AddQDQPairToWeight": target.weights_as_qdq_pairs,
                       "QuantizeBias": target.quantize_bias},
        **options,
    )


def graph_labels(onnx_path: str | os.PathLike, frames: Iterable[np.ndarray],
                 card: ModelCard | None = None) -> list[np.ndarray]:
    """Labels an exported graph gives for RGB ``frames`` (ONNX Runtime, CPU); ``card``
    describes a graph without a sidecar of its own (default: its sidecar's)."""
    engine = OnnxRuntimeEngine(onnx_path, card)
    return [engine.infer(frame, "rgb", False).labels for frame in frames]


def label_agreement(reference: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    """Fraction of pixels on which two lists of label maps agree."""
    total = sum(a.size for a in reference)
    if total == 0 or len(reference) != len(labels):
        raise ValueError("label agreement needs equally many non-empty label maps")
    return sum(int(np.count_nonzero(a == b)) for a, b in zip(reference, labels)) / total


def quantize_onnx(
    fp32_path: str | os.PathLike, out: str | os.PathLike, calib_frames: Sequence[np.ndarray],
    select_frames: Sequence[np.ndarray] = (), *, target: str = "onnxruntime",
    float_layers: Sequence[str] | None = None, min_gain: float = DEFAULT_MIN_GAIN,
    calibration: dict[str, Any] | None = None, rewrites: bool = True,
) -> dict[str, Any]:
    """Write a QDQ int8 copy of an exported fp32 graph, with its sidecar.

    Args:
        fp32_path: an fp32 export (with its ``.json`` sidecar, whose fields are carried over).
        out: the int8 .onnx path.
        calib_frames: H x W x 3 uint8 RGB frames for the activation ranges.
        select_frames: held-out RGB frames on which float layers are chosen; needed when
            ``float_layers`` is None.
        target: ``onnxruntime`` or ``tensorrt`` (see the module docstring).
        float_layers: roles from ``FLOAT_CANDIDATES`` to keep float; None measures them.
        min_gain: agreement a float layer must add to be kept float.
        calibration: provenance recorded in the sidecar (source, frame count).
        rewrites: apply the target's graph rewrites (:mod:`.qdq_rewrites`); off only to
            measure what they save (``benchmarks/int8_profile.py``).

    Returns:
        The int8 sidecar (also written to ``<out>.json``).

    Raises:
        ValueError: unknown target or role, no calibration frames, not an fp32 export.
    """
    if target not in TARGETS:
        raise ValueError(f"int8 target must be one of {sorted(TARGETS)}, got {target!r}")
    if not calib_frames:
        raise ValueError("int8 calibration needs at least one frame")
    unknown = set(float_layers or ()) - set(FLOAT_CANDIDATES)
    if unknown:
        raise ValueError(f"unknown float layers {sorted(unknown)}; choose from "
                         f"{FLOAT_CANDIDATES}")
    if float_layers is None and not select_frames:
        raise ValueError("choosing float layers by measurement needs held-out frames")
    fp32_path, out = Path(fp32_path), Path(out)
    card = _fp32_card(fp32_path)
    channel_order = card.channel_order or "rgb"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = TARGETS[target]
    if not rewrites:
        spec = replace(spec, onnxruntime_rewrites=False)

    with tempfile.TemporaryDirectory(prefix="bisestdc-quant-") as tmp:
        tmp_dir = Path(tmp)
        prepared = tmp_dir / "prepared.onnx"
        # Shape inference (and, for ONNX Runtime, graph optimisation) first, as ONNX Runtime's
        # quantizer asks.
        quant_pre_process(str(fp32_path), str(prepared),
                          skip_optimization=not spec.optimize_first)
        model = onnx.load(str(prepared))
        rewrites: dict[str, int] = {}
        if spec.onnxruntime_rewrites:
            model, rewrites["average_pools_as_depthwise_convs"] = \
                average_pools_as_depthwise_convs(model)
            onnx.save(model, str(prepared))
        roles, fixed_float = network_nodes(model)
        input_name, input_hw = graph_input(model)
        cache = tmp_dir / "ranges.json"
        reader = FrameReader(calib_frames, input_name, channel_order, input_hw)
        measured: dict[str, Any] = {}
        if float_layers is None:
            float_layers, measured = _choose_float_layers(
                fp32_path, prepared, tmp_dir, reader, spec, roles, fixed_float, cache,
                select_frames, card, min_gain)
        kept = [roles[r] for r in float_layers if r in roles]
        _quantize(prepared, out, reader, spec, fixed_float + kept, cache)
        if spec.onnxruntime_rewrites:
            model, rewrites["shapes_from_quantized_tensors"] = \
                shapes_from_quantized_tensors(onnx.load(str(out)))
            onnx.save(model, str(out))

    onnx.checker.check_model(str(out))
    if target == "tensorrt":
        problems = tensorrt_qdq_problems(onnx.load(str(out)))
        if problems:
            raise RuntimeError(f"{out}: not a TensorRT QDQ graph: " + "; ".join(problems[:5]))
    int8_card = card.replace(precision="int8",
                             float_layers=tuple(r for r in float_layers if r in roles))
    record = {k: v for k, v in read_sidecar(fp32_path).items() if k not in card.to_dict()}
    quantized = write_sidecar(out, {
        **record,
        "sha256": file_sha256(out),
        # timezone.utc, not datetime.UTC: the package also runs on Python 3.10.
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "quantization": {
            "format": "QDQ", "target": target, "tool": "onnxruntime.quantization",
            "weights": "int8 symmetric per-channel",
            "activations": ("int8 symmetric" if spec.symmetric_activations
                            else "uint8 asymmetric") + " per-tensor, min/max calibrated",
            "calibration": {**(calibration or {}), "frames": len(calib_frames)},
            "float_layers": {role: roles[role] for role in float_layers if role in roles},
            "float_layer_selection": measured or "given",
            "graph_rewrites": rewrites,
            "fp32_source": {"file": fp32_path.name, "sha256": file_sha256(fp32_path)},
        },
    }, int8_card)
    log.info("wrote int8 QDQ graph %s (%s target, float layers: %s)", out, target,
             ", ".join(float_layers) or "none")
    return quantized


def _choose_float_layers(
    fp32_path: Path, prepared: Path, tmp_dir: Path, reader: FrameReader, spec: QuantTarget,
    roles: dict[str, str], fixed_float: list[str], cache: Path,
    select_frames: Sequence[np.ndarray], card: ModelCard, min_gain: float,
) -> tuple[list[str], dict[str, Any]]:
    """Quantize everything once, then each candidate left float; keep those that pay off."""
    trial = tmp_dir / "trial.onnx"
    _quantize(prepared, trial, reader, spec, fixed_float, cache)
    reference = graph_labels(fp32_path, select_frames, card)
    baseline = label_agreement(reference, graph_labels(trial, select_frames, card))
    log.info("all layers int8: agreement %.4f%% with fp32 on %d frames", baseline * 100,
             len(select_frames))
    measured: dict[str, Any] = {"frames": len(select_frames), "min_gain": min_gain,
                                "agreement_all_int8": round(baseline, 6), "candidates": {}}
    chosen = []
    for role, node in roles.items():
        _quantize(prepared, trial, reader, spec, fixed_float + [node], cache)
        agreement = label_agreement(reference, graph_labels(trial, select_frames, card))
        gain = agreement - baseline
        measured["candidates"][role] = {"node": node, "agreement_if_float": round(agreement, 6),
                                        "gain": round(gain, 6)}
        log.info("float %s (%s): agreement %.4f%% (%+.4f points)", role, node,
                 agreement * 100, gain * 100)
        if gain >= min_gain:
            chosen.append(role)
    return chosen, measured


def _fp32_card(fp32_path: Path) -> ModelCard:
    """The card of the fp32 export to quantize.

    Raises:
        ValueError: no sidecar, or a graph that is not fp32.
    """
    card = onnx_card(fp32_path)
    if card is None:
        raise ValueError(f"{fp32_path}: no sidecar ({sidecar_path(fp32_path).name}); quantize "
                         "an export of bisestdc-export")
    if (card.precision or "fp32") != "fp32":
        raise ValueError(f"{fp32_path} is already {card.precision}; quantize the fp32 export")
    return card


def int8_path(fp32_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def quantize_from_sources(
    fp32_path: str | os.PathLike, out: str | os.PathLike, *, target: str = "onnxruntime",
    calib_images: str | None = None, calib_bag: str | None = None,
    calib_topic: str | None = None, calib_count: int = DEFAULT_CALIB_COUNT,
    select_count: int = DEFAULT_SELECT_COUNT, float_layers: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`quantize_onnx` with frames from a folder, a bag topic or generated scenes.

    The first ``calib_count`` frames calibrate; the next ``select_count`` choose float layers
    (generated scenes at the network size when neither a folder nor a bag is given).
    """
    card = _fp32_card(Path(fp32_path))
    size = tuple(card.network_size or graph_input(onnx.load(str(fp32_path)))[1] or ())
    wanted = calib_count + (select_count if float_layers is None else 0)
    frames = list(calibration_source(wanted, calib_images, calib_bag, calib_topic,
                                     synthetic_size=size or None, seed=seed))
    if len(frames) <= calib_count and float_layers is None:
        raise ValueError(f"{len(frames)} calibration frames found; {wanted} needed "
                         f"({calib_count} to calibrate, {select_count} to choose float layers)")
    source = ({"images": str(calib_images)} if calib_images else
              {"bag": str(calib_bag), "topic": calib_topic} if calib_bag else
              {"synthetic": {"seed": seed, "size": list(size)}})
    return quantize_onnx(fp32_path, out, frames[:calib_count], frames[calib_count:],
                         target=target, float_layers=float_layers, calibration=source)


def quantize_cached(fp32_path: str | os.PathLike, *, target: str = "onnxruntime",
                    calib_count: int = DEFAULT_CALIB_COUNT, seed: int = 0) -> Path:
    """An int8 copy of a cached fp32 export beside it, calibrated on generated scenes.

    For engines asked for int8 with only a checkpoint (latency runs, quick starts): the float
    layers are ``DEFAULT_FLOAT_LAYERS``. A copy whose sidecar hash still matches is reused.
    """
    fp32_path = Path(fp32_path)
    out = fp32_path.with_name(
        f"{fp32_path.stem}.int8-{target}-n{calib_count}-s{seed}-r{RECIPE_VERSION}.onnx")
    sidecar = read_sidecar(out) if out.is_file() else None
    if sidecar is not None and sidecar.get("sha256") == file_sha256(out) and \
            sidecar["quantization"]["fp32_source"]["sha256"] == file_sha256(fp32_path):
        log.info("reusing cached int8 graph %s", out)
        return out
    log.warning("quantizing %s to int8 with %d generated calibration scenes; for deployment "
                "quantize with the camera's own frames (bisestdc-quantize)", fp32_path.name,
                calib_count)
    remove_stale_temps(out.parent)  # graphs of killed processes
    # Sidecar first: a reader that finds the .onnx always finds its sidecar.
    with atomic_path(out, companions=(".json",)) as tmp:
        quantize_from_sources(fp32_path, tmp, target=target, calib_count=calib_count,
                              float_layers=DEFAULT_FLOAT_LAYERS, seed=seed)
    return out
