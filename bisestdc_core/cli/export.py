"""Export a network to ONNX with pre- and post-processing inside the graph (and TensorRT).

The command line over :mod:`bisestdc_core.inference.onnx_export` (the graph, its sidecar and
the export cache), :mod:`bisestdc_core.inference.onnxruntime.quantize` (int8 QDQ graphs) and
:mod:`bisestdc_core.inference.tensorrt.build` (engine builds). The graph takes N x H x W x 3
uint8 frames (RGB or BGR, ``--channel-order``) and returns uint8 ``labels`` at the network size
(or, with ``--labels-at-input-size``, at the input size) and, with ``--confidence``, the max
class probability x 255. Input H/W are fixed by default (``--input-size``, default: the network
size, which is what TensorRT engines are built for); ``--dynamic`` makes batch, H and W
symbolic. A JSON sidecar ``<file>.onnx.json`` records the model card, the input layout, the
opset and the file's sha256; the engines read it.

Examples::

    python -m bisestdc_core.cli.export --weights ckpt.pth --out model.onnx --confidence
    python -m bisestdc_core.cli.export --model stdc1 --num-classes 19 --seed-weights seed.pth \\
        --out stdc1.onnx --channel-order bgr --tensorrt --precision fp16
    python -m bisestdc_core.cli.export --weights ckpt.pth --out model.onnx --tensorrt \\
        --precision int8 --calib-images frames/ --timing-cache /data/trt/timing.cache

TensorRT int8 is built from an explicitly quantized (QDQ) graph by default, quantized for
TensorRT on the --calib-* frames (generated scenes without them) into
``<out stem>.int8-tensorrt.onnx`` (``<out stem>.int8.onnx`` with --int8-target tensorrt);
``--int8-calibration implicit`` builds from the float graph with TensorRT's entropy
calibrator instead (deprecated from TensorRT 10.1).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from bisestdc_core.artefacts import file_sha256, remove_stale_temps, sidecar_path
from bisestdc_core.cli.boundary import add_debug_flag, require_file, run_command
from bisestdc_core.cli.model_options import add_segmenter_arguments
from bisestdc_core.errors import UsageError
from bisestdc_core.inference.class_choice import card_with_class_set
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.model_files import read_sidecar
from bisestdc_core.inference.onnx_export import OPSET, export_onnx
from bisestdc_core.inference.registry import ENGINES
from bisestdc_core.inference.tensorrt.options import (
    DEFAULT_WORKSPACE_MB,
    INT8_CALIBRATIONS,
    TensorRTOptions,
)
from bisestdc_core.model_card import CHANNEL_ORDERS, check_network_size

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = add_segmenter_arguments(
        parser, files=("weights",), engine=False, device=False,
        precisions=ENGINES["tensorrt"].precisions, precision_default="fp16",
        precision_help="TensorRT engine precision (--tensorrt); int8 also writes a QDQ ONNX "
                       "(and builds the engine from one, see --int8-calibration)",
        title="network")
    src.add_argument("--seed-weights", help="seed (published) checkpoint for --model")
    onx = parser.add_argument_group("ONNX")
    onx.add_argument("--out", help="output .onnx path (required unless --check-tensorrt)")
    onx.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                     help="fixed input size (default: the network size)")
    onx.add_argument("--dynamic", action="store_true", help="symbolic batch, H and W")
    onx.add_argument("--channel-order", default="rgb", choices=CHANNEL_ORDERS)
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
    trt.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB,
                     help="builder workspace memory limit in MiB (part of the engine cache key)")
    trt.add_argument("--timing-cache", default="",
                     help="persistent builder timing cache file, reused and updated by every "
                          "build (empty: timing-<gpu>-sm<cc>-trt<version>.cache in the engine "
                          "cache); later builds on this GPU skip most kernel timing")
    trt.add_argument("--dla-core", type=int, default=-1,
                     help="-1: build for the GPU; N >= 0: for DLA core N (Jetson Xavier/Orin) "
                          "with GPU fallback; refused where the device has no DLA")
    trt.add_argument("--int8-calibration", default="qdq", choices=INT8_CALIBRATIONS,
                     help="how a --precision int8 engine gets its scales: qdq builds from the "
                          "QDQ graph (explicit quantization, the TensorRT 10 way); implicit "
                          "runs TensorRT's entropy calibrator on the --calib-* frames or the "
                          "--calib-cache (deprecated from TensorRT 10.1)")
    trt.add_argument("--calib-images", help="folder of images for int8 calibration")
    trt.add_argument("--calib-bag", help="rosbag for int8 calibration (with --calib-topic)")
    trt.add_argument("--calib-topic", help="image topic in --calib-bag")
    trt.add_argument("--calib-count", type=int, default=256, help="calibration frames to use")
    trt.add_argument("--calib-cache", help="implicit calibration's cache file (when omitted: "
                                           "<engine stem>.<onnx sha256>.calib beside the engine)")
    # --precision int8 also writes <out stem>.int8.onnx, a QDQ graph (ONNX Runtime CPU int8,
    # TensorRT explicit quantization), calibrated on the --calib-* frames.
    from bisestdc_core.cli.quantize import add_quantize_arguments  # noqa: PLC0415

    add_quantize_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    add_debug_flag(parser)
    return parser


def tensorrt_options(args: argparse.Namespace) -> TensorRTOptions:
    """The engine's build options from the command line (refused in one line when invalid)."""
    try:
        return TensorRTOptions(workspace_mb=args.workspace_mb, timing_cache=args.timing_cache,
                               dla_core=args.dla_core, int8_calibration=args.int8_calibration)
    except ValueError as error:
        raise UsageError(str(error)) from error


def write_qdq_graph(args: argparse.Namespace, target: str) -> Path:
    """Quantize ``--out`` for ``target`` on the --calib-* frames; returns the QDQ graph's path:
    ``<stem>.int8.onnx`` for ``--int8-target``, ``<stem>.int8-tensorrt.onnx`` for the engine
    when that target is another."""
    from bisestdc_core.cli.quantize import parse_float_layers  # noqa: PLC0415
    from bisestdc_core.inference.onnxruntime import quantize  # noqa: PLC0415

    out = quantize.int8_path(args.out)
    if target != args.int8_target:
        out = Path(args.out).with_name(f"{Path(args.out).stem}.int8-{target}.onnx")
    try:
        qdq = quantize.quantize_from_sources(
            args.out, out, target=target,
            calib_images=args.calib_images, calib_bag=args.calib_bag,
            calib_topic=args.calib_topic, calib_count=args.calib_count,
            select_count=args.select_count,
            float_layers=parse_float_layers(args.float_layers))
    except ValueError as error:  # calibration inputs, float layers
        raise UsageError(str(error)) from error
    print(f"int8 QDQ ONNX: {out} ({target} target, float layers: "
          f"{', '.join(qdq['quantization']['float_layers']) or 'none'})")
    return out


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
    from bisestdc_core.inference.tensorrt.build import parse_with_tensorrt  # noqa: PLC0415 - optional, heavy dependency
    from bisestdc_core.inference.tensorrt.parser_rules import check_tensorrt_rules, verdict_lines  # noqa: PLC0415
    from bisestdc_core.inference.tensorrt.platform import installed_lines  # noqa: PLC0415

    result = check_tensorrt_rules(onnx_path)
    lines = [f"{onnx_path}:", *verdict_lines(result)]
    accepted = not any(result.values())
    try:
        errors = parse_with_tensorrt(onnx_path)
        lines.append("installed TensorRT parser: " + ("accepted" if not errors else
                                                       "rejected: " + "; ".join(errors)))
        accepted = accepted and not errors
    except RuntimeError as error:
        lines.append(f"installed TensorRT parser: not run ({error})")
    lines += ["installed:", *(f"  {line}" for line in installed_lines())]
    print("\n".join(lines))
    return 0 if accepted else 1


def main(argv: Sequence[str] | None = None,
         errors: tuple[type[BaseException], ...] = ()) -> int:
    """The command; ``errors``: more error types its boundary reports in one line (the ROS
    tools' bag errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.check_tensorrt and not args.out:
        parser.error("--out is required (unless --check-tensorrt)")
    if args.weights and args.seed_weights:
        parser.error("give either --weights or --seed-weights, not both")
    return run_command(run_export, args, errors)


def run_export(args: argparse.Namespace) -> int:
    """What the command does with its parsed ``args``."""
    if args.check_tensorrt:
        try:
            return check_tensorrt(args.check_tensorrt)
        except ValueError as error:
            raise UsageError(f"--check-tensorrt: {error}") from error
    weights = args.weights or args.seed_weights
    require_file(weights, "--weights" if args.weights else "--seed-weights")
    network_size = (check_network_size(list(args.network_size), "--network-size")
                    if args.network_size else None)
    # Checked before the export, like the calibration source: a bad flag fails in seconds.
    options = tensorrt_options(args) if args.tensorrt else None
    calibration = None
    if args.tensorrt and args.precision == "int8":
        from bisestdc_core.inference.calibration_data import CalibrationSource  # noqa: PLC0415

        # Checked before the export and the build: a bad source fails in seconds, by name.
        calibration = CalibrationSource(args.calib_images, args.calib_bag, args.calib_topic,
                                        args.calib_count)
        try:
            if calibration.given:
                calibration.validate()
        except ValueError as error:
            raise UsageError(str(error)) from error
    network, card = load_network(weights, args.model_name, args.num_classes)
    try:
        card = card_with_class_set(card, args.class_set)
    except ValueError as error:
        raise UsageError(f"{weights or '--class-set'}: {error}") from error
    if network_size:
        card = card.replace(network_size=network_size)
    # Temp files an earlier, killed export left beside its output.
    remove_stale_temps(Path(args.out).parent)
    export_onnx(
        network, args.out, card, input_size=args.input_size,
        channel_order=args.channel_order, dynamic=args.dynamic, confidence=args.confidence,
        labels_at_input_size=args.labels_at_input_size, opset=args.opset,
        source={"weights": weights, "weights_sha256": file_sha256(weights) if weights else None},
    )
    sha256 = read_sidecar(args.out)["sha256"]
    print(f"ONNX: {args.out} (sha256 {sha256[:12]}, sidecar {sidecar_path(args.out)})")
    build_from = Path(args.out)
    if args.precision == "int8":
        targets = [args.int8_target]
        if args.tensorrt and options.int8_calibration == "qdq" and args.int8_target != "tensorrt":
            targets.append("tensorrt")  # the engine is built from a graph quantized for it
        for target in targets:
            qdq_path = write_qdq_graph(args, target)
            if target == "tensorrt" and options is not None and \
                    options.int8_calibration == "qdq":
                build_from = qdq_path
    if args.tensorrt:
        from bisestdc_core.inference.tensorrt.build import ensure_engine  # noqa: PLC0415 - optional, heavy dependency

        try:
            engine = ensure_engine(
                build_from, engine_path=engine_path(args.out, args.engine_out, args.engine_cache),
                precision=args.precision, options=options,
                calibration=calibration, calib_cache=args.calib_cache,
            )
        except ValueError as error:  # int8 inputs, checked before TensorRT loads
            raise UsageError(str(error)) from error
        print(f"TensorRT engine: {engine} (from {build_from.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
