"""Export a network to ONNX with pre- and post-processing inside the graph (and TensorRT).

The exported graph takes what a camera driver delivers and returns what a node publishes:

* input ``image``: N x H x W x 3 uint8, RGB or BGR (fixed at export, ``--channel-order``);
* inside: uint8 -> float as the first node, then (in float) channel flip, transpose, bilinear
  resize to the network size, mean/std normalisation, the network, argmax (and max softmax
  probability), any resize of the maps, and float -> uint8 as the last nodes: the graph has no
  uint8 tensor but its input and outputs, as TensorRT's ONNX parser requires;
* output ``labels``: N x h x w uint8 train ids at the network size (default) or, with
  ``--labels-at-input-size``, nearest-upsampled to H x W;
* output ``confidence`` (``--confidence``): same shape, uint8, max class probability x 255.

Input H/W are fixed by default (``--input-size``, default: the network size, which is what
TensorRT engines are built for); ``--dynamic`` makes batch, H and W symbolic so one file
serves cameras of any size (ONNX Runtime). A JSON sidecar ``<file>.onnx.json`` records the
model, classes, sizes, channel order, outputs, opset and the file's sha256; the engines read it.

Examples::

    python -m bisestdc_core.export --weights ckpt.pth --out model.onnx --confidence
    python -m bisestdc_core.export --model stdc1 --num-classes 19 --seed-weights seed.pth \\
        --out stdc1.onnx --channel-order bgr --tensorrt --precision fp16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from .inference.loading import file_sha256, load_network, resolve_class_set, state_dict_sha256
from .inference.processing import (
    DEFAULT_NETWORK_SIZE,
    Preprocess,
    check_channel_order,
    confidence_from_logits,
    labels_from_logits,
    resize_nearest,
)

log = logging.getLogger(__name__)

OPSET = 17
SIDECAR_FORMAT = "bisestdc-onnx"
INPUT_NAME = "image"
# Bump when the exported graph changes, so cached exports are not reused. 2: uint8 only at the
# graph's boundary (TensorRT's parser rejects the version-1 graphs; the outputs are the same).
EXPORT_VERSION = 2


class SegmentationGraph(nn.Module):
    """Preprocess -> network -> argmax (-> confidence), the function the ONNX file holds.

    Shapes: image N x H x W x 3 uint8 -> labels N x h x w uint8 [, confidence N x h x w uint8]
    with (h, w) = network size, or (H, W) when ``labels_at_input_size``.
    """

    def __init__(
        self, network: nn.Module, network_size: Sequence[int], mean: Sequence[float],
        std: Sequence[float], channel_order: str = "rgb", confidence: bool = False,
        labels_at_input_size: bool = False, dynamic: bool = False,
    ):
        super().__init__()
        # With dynamic H/W the trace must keep the resizes even though the dummy input may
        # have the network size (the tracer would otherwise bake in the shape check).
        self.dynamic = dynamic
        self.preprocess = Preprocess(network_size, mean, std, channel_order,
                                     always_resize=dynamic)
        self.network = network
        self.confidence = confidence
        self.labels_at_input_size = labels_at_input_size

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # TensorRT accepts uint8 only as a network input consumed by a Cast and as a network
        # output produced by one (see inference/tensorrt_rules.py): cast to float first, keep
        # labels and confidence in float through any resize, cast to uint8 last. Every value
        # on the way is a whole number, so the outputs equal the all-uint8 formulation's.
        pixels = image.float()
        logits = self.network(self.preprocess(pixels))
        maps = [labels_from_logits(logits, torch.float32)]
        if self.confidence:
            maps.append(confidence_from_logits(logits, torch.float32))
        if self.labels_at_input_size:
            size = pixels.shape[1:3]
            maps = [resize_nearest(m, size, always=self.dynamic) for m in maps]
        outputs = tuple(m.to(torch.uint8) for m in maps)
        return outputs if self.confidence else outputs[0]


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def read_sidecar(onnx_path: str | os.PathLike) -> dict[str, Any] | None:
    """The export sidecar of an ONNX file, or None if it has none.

    Raises:
        ValueError: the sidecar exists but is not valid JSON of this format.
    """
    path = sidecar_path(onnx_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path}: not a {SIDECAR_FORMAT} sidecar")
    return data


def export_onnx(
    network: nn.Module, out: str | os.PathLike, *, model_name: str, class_set: str,
    class_names: Sequence[str], mean: Sequence[float], std: Sequence[float],
    network_size: Sequence[int] = DEFAULT_NETWORK_SIZE, input_size: Sequence[int] | None = None,
    channel_order: str = "rgb", dynamic: bool = False, confidence: bool = False,
    labels_at_input_size: bool = False, opset: int = OPSET, source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``network`` (fp32, eval) with in-graph pre/post-processing; write the sidecar.

    Args:
        network: N x 3 x h x w normalised RGB -> N x C x h x w logits in eval mode.
        out: the .onnx path (parent folders are created).
        network_size: (h, w) the network runs at.
        input_size: (H, W) of the input when not dynamic; defaults to ``network_size``.
        dynamic: symbolic batch, H and W.
        source: provenance recorded in the sidecar (weights path and hash).

    Returns:
        The sidecar dict (also written to ``<out>.json``).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    channel_order = check_channel_order(channel_order)
    network_size = (int(network_size[0]), int(network_size[1]))
    input_size = tuple(int(v) for v in (input_size or network_size))
    num_classes = int(getattr(network, "num_classes", len(class_names)))
    if num_classes > 255:
        raise ValueError(f"{num_classes} classes do not fit uint8 labels")
    graph = SegmentationGraph(
        network.float().eval(), network_size, mean, std, channel_order, confidence,
        labels_at_input_size, dynamic,
    ).eval()
    outputs = ["labels"] + (["confidence"] if confidence else [])
    dummy = torch.zeros(1, *input_size, 3, dtype=torch.uint8)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}}
        for name in outputs:
            dynamic_axes[name] = (
                {0: "batch", 1: "height", 2: "width"} if labels_at_input_size else {0: "batch"}
            )
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not a dependency here); it is still the supported path for opset 17.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Shape checks in the wrapper are meant to be resolved at trace time (fixed export) or
        # are bypassed (dynamic export), so the tracer's warning about them is noise.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.inference_mode():
            torch.onnx.export(
                graph, (dummy,), str(out), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=outputs, dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    onnx.checker.check_model(str(out))
    label_shape = ["N", "H", "W"] if labels_at_input_size else ["N", *network_size]
    sidecar = {
        "format": SIDECAR_FORMAT,
        "export_version": EXPORT_VERSION,
        "model": model_name,
        "num_classes": num_classes,
        "class_set": class_set,
        "classes": list(class_names),
        "network_size": list(network_size),
        "input": {
            "name": INPUT_NAME, "layout": "NHWC", "dtype": "uint8",
            "channel_order": channel_order,
            "shape": [None, None, None, 3] if dynamic else [1, *input_size, 3],
        },
        "channel_order": channel_order,
        "dynamic": dynamic,
        "outputs": {name: {"dtype": "uint8", "shape": label_shape} for name in outputs},
        "labels_at_input_size": labels_at_input_size,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "opset": opset,
        "sha256": file_sha256(out),
        "source": source or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n")
    log.info("exported %s (%s, %s, outputs %s) -> %s", model_name, channel_order,
             "dynamic H/W" if dynamic else f"input {input_size}", outputs, out)
    return sidecar


def cache_dir(kind: str) -> Path:
    """``$BISESTDC_CACHE_DIR/kind``, else ``$XDG_CACHE_HOME/bisestdc/kind`` (~/.cache)."""
    root = os.environ.get("BISESTDC_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(xdg) / "bisestdc"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_cached(
    network: nn.Module, meta: dict[str, Any], weights: str | os.PathLike | None, *,
    class_set: str, class_names: Sequence[str], network_size: Sequence[int],
    channel_order: str = "rgb", dynamic: bool = True, confidence: bool = False,
    directory: Path | None = None,
) -> Path:
    """Export into the cache unless an export with the same weights and settings is there.

    The key is the weights' hash (the file's sha256, or the tensors' for in-memory weights)
    plus every export setting, so a changed checkpoint or setting never reuses a stale file.
    ``directory`` replaces the persistent cache folder (for networks no file describes, whose
    exports could never be reused).
    """
    weights_hash = file_sha256(weights) if weights is not None else state_dict_sha256(network)
    settings = (
        f"{meta['model']}-c{meta['num_classes']}-{network_size[0]}x{network_size[1]}-"
        f"{channel_order}-{'dyn' if dynamic else 'fixed'}-{'conf' if confidence else 'noconf'}-"
        f"op{OPSET}-v{EXPORT_VERSION}"
    )
    path = (directory or cache_dir("onnx")) / f"{weights_hash[:16]}-{settings}.onnx"
    sidecar = read_sidecar(path) if path.is_file() else None
    if sidecar is not None and sidecar.get("sha256") == file_sha256(path):
        log.info("reusing cached ONNX export %s", path)
        return path
    log.info("exporting ONNX into the cache (%s)", path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    export_onnx(
        network, tmp, model_name=meta["model"], class_set=class_set, class_names=class_names,
        mean=meta["mean"], std=meta["std"], network_size=network_size,
        channel_order=channel_order, dynamic=dynamic, confidence=confidence,
        source={"weights": str(weights) if weights else None, "weights_sha256": weights_hash},
    )
    # Rename the sidecar first: a reader that finds the .onnx always finds its sidecar.
    os.replace(sidecar_path(tmp), sidecar_path(path))
    os.replace(tmp, path)
    return path


# ---- command line ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = parser.add_argument_group("network")
    src.add_argument("--weights", help="project checkpoint (or a seed checkpoint with --model)")
    src.add_argument("--model", default="bisestdc", choices=["bisestdc", "stdc1", "stdc2"],
                     help="network name when not given by a project checkpoint")
    src.add_argument("--num-classes", type=int, default=19)
    src.add_argument("--seed-weights", help="seed (published) checkpoint for --model")
    src.add_argument("--class-set", help="class set name (default: the checkpoint's)")
    onx = parser.add_argument_group("ONNX")
    onx.add_argument("--out", help="output .onnx path (required unless --check-tensorrt)")
    onx.add_argument("--network-size", nargs=2, type=int, metavar=("H", "W"),
                     help="size the network runs at (default: checkpoint's, else 512 1024)")
    onx.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                     help="fixed input size (default: the network size)")
    onx.add_argument("--dynamic", action="store_true", help="symbolic batch, H and W")
    onx.add_argument("--channel-order", default="rgb", choices=["rgb", "bgr"])
    onx.add_argument("--confidence", action="store_true", help="add the confidence output")
    onx.add_argument("--labels-at-input-size", action="store_true",
                     help="upsample labels (nearest) to the input size inside the graph")
    onx.add_argument("--opset", type=int, default=OPSET)
    trt = parser.add_argument_group("TensorRT (ahead-of-time engine build)")
    trt.add_argument("--check-tensorrt", metavar="ONNX",
                     help="only check ONNX against TensorRT 8.5/8.6/10 parser rules (and the "
                          "installed parser, if any), print what is installed, and exit")
    trt.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine")
    trt.add_argument("--engine-out",
                     help="engine path (when omitted: <out> with .engine, or the cache with "
                          "--engine-cache)")
    trt.add_argument("--engine-cache", action="store_true",
                     help="put the engine in the engine cache ($BISESTDC_CACHE_DIR/tensorrt, "
                          "else ~/.cache/bisestdc/tensorrt) under a name keyed by ONNX, GPU, "
                          "TensorRT version, precision and shape")
    trt.add_argument("--precision", default="fp16", choices=["fp16", "fp32", "int8"])
    trt.add_argument("--workspace-mb", type=int, default=2048)
    trt.add_argument("--calib-images", help="folder of images for int8 calibration")
    trt.add_argument("--calib-bag", help="rosbag for int8 calibration (with --calib-topic)")
    trt.add_argument("--calib-topic", help="image topic in --calib-bag")
    trt.add_argument("--calib-count", type=int, default=256, help="calibration frames to use")
    trt.add_argument("--calib-cache", help="calibration cache file (when omitted: "
                                           "<engine stem>.<onnx sha256>.calib beside the engine)")
    # --precision int8 also writes <out stem>.int8.onnx, a QDQ graph (ONNX Runtime CPU int8,
    # TensorRT explicit quantization), calibrated on the --calib-* frames.
    from .inference.quantize import add_quantize_arguments  # noqa: PLC0415

    add_quantize_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def engine_path(onnx_path: str | os.PathLike, engine_out: str | os.PathLike | None,
                use_cache: bool) -> Path | None:
    """Where ``--tensorrt`` writes the engine: ``--engine-out``, else beside the ONNX with the
    ``.engine`` suffix (what ``engine_path:=`` in the launch examples expects), else (None) the
    engine cache when ``--engine-cache`` asks for it."""
    if engine_out:
        return Path(engine_out)
    return None if use_cache else Path(onnx_path).with_suffix(".engine")


def check_tensorrt(onnx_path: str | os.PathLike) -> int:
    """Print the parser-rules verdict, the installed parser's verdict and what is installed;
    0 when every check accepts the graph."""
    from .inference import tensorrt_engine  # noqa: PLC0415 - optional, heavy dependency
    from .inference.tensorrt_rules import check_tensorrt_rules, verdict_lines  # noqa: PLC0415

    result = check_tensorrt_rules(onnx_path)
    lines = [f"{onnx_path}:", *verdict_lines(result)]
    accepted = not any(result.values())
    try:
        errors = tensorrt_engine.parse_with_tensorrt(onnx_path)
        lines.append("installed TensorRT parser: " + ("accepted" if not errors else
                                                       "rejected: " + "; ".join(errors)))
        accepted = accepted and not errors
    except RuntimeError as error:
        lines.append(f"installed TensorRT parser: not run ({error})")
    lines += ["installed:", *(f"  {line}" for line in tensorrt_engine.installed_lines())]
    print("\n".join(lines))
    return 0 if accepted else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.check_tensorrt:
        try:
            return check_tensorrt(args.check_tensorrt)
        except ValueError as error:
            raise SystemExit(f"bisestdc-export: {error}") from error
    if not args.out:
        parser.error("--out is required (unless --check-tensorrt)")
    if args.weights and args.seed_weights:
        raise SystemExit("give either --weights or --seed-weights, not both")
    calibration = None
    if args.tensorrt and args.precision == "int8":
        from .inference.calibration_data import CalibrationSource  # noqa: PLC0415

        # Checked before the export and the build: a bad source fails in seconds, by name.
        calibration = CalibrationSource(args.calib_images, args.calib_bag, args.calib_topic,
                                        args.calib_count)
        try:
            if calibration.given:
                calibration.validate()
        except ValueError as error:
            raise SystemExit(f"bisestdc-export: {error}") from error
    weights = args.weights or args.seed_weights
    network, meta = load_network(weights, args.model, args.num_classes)
    class_set = resolve_class_set(args.class_set, meta.get("class_set"), meta["num_classes"])
    network_size = tuple(args.network_size or meta.get("network_size") or DEFAULT_NETWORK_SIZE)
    sidecar = export_onnx(
        network, args.out, model_name=meta["model"], class_set=class_set.name,
        class_names=class_set.names, mean=meta["mean"], std=meta["std"],
        network_size=network_size, input_size=args.input_size,
        channel_order=args.channel_order, dynamic=args.dynamic, confidence=args.confidence,
        labels_at_input_size=args.labels_at_input_size, opset=args.opset,
        source={"weights": weights, "weights_sha256": file_sha256(weights) if weights else None},
    )
    print(f"ONNX: {args.out} (sha256 {sidecar['sha256'][:12]}, sidecar {sidecar_path(args.out)})")
    if args.precision == "int8":
        from .inference import quantize  # noqa: PLC0415

        qdq = quantize.quantize_from_sources(
            args.out, quantize.int8_path(args.out), target=args.int8_target,
            calib_images=args.calib_images, calib_bag=args.calib_bag,
            calib_topic=args.calib_topic, calib_count=args.calib_count,
            select_count=args.select_count,
            float_layers=quantize.parse_float_layers(args.float_layers))
        print(f"int8 QDQ ONNX: {quantize.int8_path(args.out)} (float layers: "
              f"{', '.join(qdq['quantization']['float_layers']) or 'none'})")
    if args.tensorrt:
        from .inference import tensorrt_engine  # noqa: PLC0415 - optional, heavy dependency

        try:
            engine = tensorrt_engine.ensure_engine(
                args.out, engine_path=engine_path(args.out, args.engine_out, args.engine_cache),
                precision=args.precision, workspace_mb=args.workspace_mb,
                calibration=calibration, calib_cache=args.calib_cache,
            )
        except ValueError as error:  # int8 inputs, checked before TensorRT loads
            raise SystemExit(f"bisestdc-export: {error}") from error
        print(f"TensorRT engine: {engine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
