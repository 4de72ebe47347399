"""``bisestdc-quantize``: static int8 quantization of an exported graph into QDQ ONNX.

    bisestdc-quantize --onnx model.onnx --out model.int8.onnx --calib-images frames/ \\
        [--int8-target tensorrt]

The work is :mod:`bisestdc_core.inference.onnxruntime.quantize`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from bisestdc_core.artefacts import remove_stale_temps
from bisestdc_core.cli.boundary import add_debug_flag, require_file, run_command
from bisestdc_core.errors import UsageError
from bisestdc_core.inference.onnxruntime.quantize import (
    DEFAULT_CALIB_COUNT,
    DEFAULT_SELECT_COUNT,
    FLOAT_CANDIDATES,
    TARGETS,
    int8_path,
    quantize_from_sources,
)


def add_quantize_arguments(parser: argparse.ArgumentParser) -> None:
    """The int8 options shared by this CLI and ``bisestdc-export``."""
    group = parser.add_argument_group("int8 QDQ quantization")
    group.add_argument("--int8-target", default="onnxruntime", choices=sorted(TARGETS),
                       help="runtime the QDQ encoding is for")
    group.add_argument("--float-layers", default="auto",
                       help="'auto' (measured), 'none', or a comma list of "
                            + ", ".join(FLOAT_CANDIDATES))
    group.add_argument("--select-count", type=int, default=DEFAULT_SELECT_COUNT,
                       help="held-out frames used to choose float layers")


def parse_float_layers(text: str) -> list[str] | None:
    """``auto`` -> None (measure), ``none`` -> [], else the comma-separated roles."""
    if text == "auto":
        return None
    return [] if text == "none" else [r.strip() for r in text.split(",") if r.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-quantize", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--onnx", required=True, help="fp32 export (bisestdc-export)")
    parser.add_argument("--out", help="int8 .onnx path (default: <onnx stem>.int8.onnx)")
    parser.add_argument("--calib-images", help="folder of calibration images")
    parser.add_argument("--calib-bag", help="rosbag with calibration frames (--calib-topic)")
    parser.add_argument("--calib-topic", help="Image or CompressedImage topic in --calib-bag")
    parser.add_argument("--calib-count", type=int, default=DEFAULT_CALIB_COUNT,
                        help="calibration frames (generated scenes when no folder or bag)")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated scenes")
    add_quantize_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None,
         errors: tuple[type[BaseException], ...] = ()) -> int:
    """The command; ``errors``: more error types its boundary reports in one line (the ROS
    tools' bag errors)."""
    parser = build_parser()
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(_quantize_command, args, errors)


def _quantize_command(args: argparse.Namespace) -> int:
    require_file(args.onnx, "--onnx")
    out = args.out or int8_path(args.onnx)
    remove_stale_temps(Path(out).parent)  # left by an earlier, killed quantization
    try:
        sidecar = quantize_from_sources(
            args.onnx, out, target=args.int8_target, calib_images=args.calib_images,
            calib_bag=args.calib_bag, calib_topic=args.calib_topic,
            calib_count=args.calib_count, select_count=args.select_count,
            float_layers=parse_float_layers(args.float_layers), seed=args.seed)
    except ValueError as error:  # calibration inputs, float layers, not an fp32 export
        raise UsageError(str(error)) from error
    float_layers = sidecar["quantization"]["float_layers"]
    print(f"int8 ONNX: {out} (float layers: {', '.join(float_layers) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
