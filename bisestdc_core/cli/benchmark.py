"""Latency of engines x networks x sizes through :class:`Segmenter` (uint8 frame -> labels).

Each measurement is one ``Segmenter.segment`` call: a uint8 H x W x 3 frame in, uint8 labels
at the frame size out, batch 1. Timing uses CUDA events on CUDA devices (the call returns host
arrays, so it is synchronous either way) and ``time.perf_counter`` on CPU. Reports median,
p90, p99 and FPS (1000 / median) plus per-stage medians; writes ``latency.json`` and
``latency.md`` into ``--out``. Random weights are used unless ``--weights`` is given: latency
does not depend on the values.

Example::

    python -m bisestdc_core.cli.benchmark --engines onnxruntime torch \\
        --models bisestdc stdc1 stdc2 --sizes 256x512 512x1024 --warmup 3 --runs 20 \\
        --out benchmarks --name cpu_latency
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bisestdc_core.cli.boundary import add_debug_flag, require_file, run_command
from bisestdc_core.cli.model_options import add_segmenter_arguments, segmenter_from_args
from bisestdc_core.inference import Segmenter
from bisestdc_core.inference.onnxruntime.session import usable_cores
from bisestdc_core.inference.registry import ENGINE_CHOICES, ENGINES
from bisestdc_core.inference.untrained_network import synthetic_frame
from bisestdc_core.models import MODEL_REGISTRY

log = logging.getLogger(__name__)

STAGES = ("preprocess", "inference", "postprocess")


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HxW, got {text!r}")
    return int(parts[0]), int(parts[1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware_info() -> dict[str, Any]:
    """CPU model, core counts, GPU (if any) and library versions."""
    import onnxruntime  # noqa: PLC0415 - only for the version string

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def summarise(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms, dtype=np.float64)
    median = float(np.median(arr))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(arr, 90)),
        "p99_ms": float(np.percentile(arr, 99)),
        "min_ms": float(arr.min()),
        "fps": 1000.0 / median if median > 0 else float("inf"),
    }


def time_segmenter(seg: Segmenter, frames: Sequence[np.ndarray], warmup: int, runs: int,
                   ) -> tuple[list[float], dict[str, float]]:
    """Per-call latencies (ms) and per-stage medians over ``runs`` calls after ``warmup``."""
    cuda = seg.device.startswith("cuda")
    for i in range(warmup):
        seg.segment(frames[i % len(frames)])
    samples: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for i in range(runs):
        frame = frames[i % len(frames)]
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            res = seg.segment(frame)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            res = seg.segment(frame)
            samples.append((time.perf_counter() - t0) * 1e3)
        for stage in STAGES:
            # The recorded benchmark files key the stages without the "_ms" suffix.
            value = getattr(res.timings, f"{stage}_ms")
            stages[stage].append(float("nan") if value is None else value)
    return samples, {s: float(np.median(v)) for s, v in stages.items()}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    entries = []
    for size in args.sizes:
        frame_size = args.frame_size or size
        frames = [synthetic_frame(*frame_size, rng) for _ in range(4)]
        for engine in args.engines:
            for model in args.models:
                seg = segmenter_from_args(args, engine=engine, model_name=model,
                                          network_size=size)
                warmup = args.warmup
                runs = args.runs
                samples, stages = time_segmenter(seg, frames, warmup, runs)
                title = MODEL_REGISTRY[model].spec.title
                entry = {
                    "engine": seg.engine_name, "model": model, "network": title,
                    "network_size": list(size), "frame_size": list(frame_size),
                    "device": seg.device, "precision": seg.precision,
                    "warmup": warmup, "runs": runs, **summarise(samples),
                    "stage_median_ms": stages, "samples_ms": [round(s, 3) for s in samples],
                }
                entries.append(entry)
                log.info("%-11s %-12s %4dx%-4d %s: median %.1f ms (p99 %.1f), %.1f FPS",
                         seg.engine_name, title, *size, seg.precision,
                         entry["median_ms"], entry["p99_ms"], entry["fps"])
                del seg
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bisestdc_core.cli.benchmark "
        + " ".join(shlex.quote(a) for a in args.argv),
        "hardware": hardware_info(),
        "note": args.note,
        "timing": "CUDA events" if torch.cuda.is_available() and args.device != "cpu"
        else "time.perf_counter",
        "entries": entries,
    }


def markdown_table(report: dict[str, Any]) -> str:
    """One table, networks of the same engine/size side by side (BiSeSTDC next to STDC1)."""
    hw = report["hardware"]
    lines = [
        f"# Latency: uint8 frame -> uint8 labels through Segmenter ({report['date']})",
        "",
        f"Hardware: {hw['cpu']} ({hw['usable_cores']} usable cores)"
        + (f", GPU {hw['gpu']}" if hw.get("gpu") else "")
        + f"; torch {hw['torch']}, onnxruntime {hw['onnxruntime']}. Timing: {report['timing']}.",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    if report.get("note"):
        lines += [report["note"], ""]
    lines += [
        "| engine | network | size (HxW) | precision | median ms | p90 ms | p99 ms | FPS "
        "| pre / inf / post ms (median) | runs |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    order = {m: i for i, m in enumerate(MODEL_REGISTRY)}
    for e in sorted(report["entries"], key=lambda e: (e["engine"], e["network_size"],
                                                      order.get(e["model"], 9))):
        st = e["stage_median_ms"]
        lines.append(
            f"| {e['engine']} | {e['network']} | {e['network_size'][0]}x{e['network_size'][1]} "
            f"| {e['precision']} | {e['median_ms']:.1f} | {e['p90_ms']:.1f} | {e['p99_ms']:.1f} "
            f"| {e['fps']:.2f} | {st['preprocess']:.1f} / {st['inference']:.1f} / "
            f"{st['postprocess']:.1f} | {e['runs']} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path, name: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown_table(report))
    return json_path, md_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-benchmark", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    # Default: the engines that run on any machine.
    parser.add_argument("--engines", nargs="+", choices=ENGINE_CHOICES,
                        default=sorted(n for n, spec in ENGINES.items() if "cpu" in spec.devices))
    parser.add_argument("--models", nargs="+", default=list(MODEL_REGISTRY),
                        choices=tuple(MODEL_REGISTRY),
                        help="networks (default: every registered one)")
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(512, 1024)],
                        metavar="HxW", help="network sizes")
    parser.add_argument("--frame-size", type=parse_size, metavar="HxW",
                        help="camera frame size (default: the network size, no resize)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    add_segmenter_arguments(parser, files=("weights",), engine=False, model=False,
                            network_size=False)
    parser.add_argument("--out", default="benchmarks", help="output folder")
    parser.add_argument("--name", default="latency", help="file stem for .json and .md")
    parser.add_argument("--note", default="", help="a line added to the Markdown report")
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.weights and len(args.models) > 1:
        # A checkpoint holds one network: each --models entry would time that same network.
        parser.error("--weights times the one network it holds: give a single --models entry")
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(_benchmark, args)


def _benchmark(args: argparse.Namespace) -> int:
    require_file(args.weights, "--weights")
    report = run_benchmark(args)
    json_path, md_path = write_report(report, Path(args.out), args.name)
    print(markdown_table(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
