"""CPU latency per precision (fp32, int8 QDQ, bf16) against this machine's matrix-product limits.

For each network and size, the same frames go through every (engine, precision) pair via
``Segmenter.segment`` (uint8 H x W x 3 frame in, uint8 labels out, batch 1): ONNX Runtime fp32,
ONNX Runtime int8 (the graph quantized on the fly, as ``precision: int8`` does), PyTorch fp32
and, where the CPU has bf16 instructions, PyTorch bf16. Within an engine, calls are
interleaved round-robin (one call per precision per round, rotating the order), so load from
other processes on a shared machine falls on each precision alike and the ratios stay
meaningful. Engines run one after the other, not interleaved: a thread pool keeps spinning for
a while after its call and would slow the other engine's next call.

The ceiling per precision is measured in the same run, right before each network and size
(load from other processes changes over a run): a 4096 x 4096 matrix product, fp32 the faster
of torch and ONNX Runtime (under load torch's OpenMP pool loses more), bf16 with torch, int8
with ONNX Runtime's MatMulInteger (uint8 x int8, the instruction path int8 convolutions use).
Each network's achieved GOP/s is 2 x its MACs (torch's flop counter, main path) / median
latency, printed next to the ceiling of its precision.

    python -m benchmarks.cpu_precision --out benchmarks --name cpu_precision
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from benchmarks.reports import write_report
from bisestdc_core.cli.benchmark import hardware_info, parse_size, summarise
from bisestdc_core.inference import Segmenter
from bisestdc_core.inference.onnxruntime.session import make_session, usable_cores
from bisestdc_core.inference.torch_engine import cpu_bf16_supported
from bisestdc_core.inference.untrained_network import synthetic_frame
from bisestdc_core.models import MODEL_REGISTRY, build_model

log = logging.getLogger("cpu_precision")
MATRIX_N = 4096
# Precision of each (engine, precision) pair for the ceiling it is compared with.
PAIRS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32"), ("torch", "bf16"))


# ---- ceilings -------------------------------------------------------------------------------

def _best_gops(run: Callable[[], object], ops: float, repeats: int) -> float:
    """Highest GOP/s over ``repeats`` timed calls after one warm-up (the limit, not typical)."""
    run()
    best = min(_timed(run) for _ in range(repeats))
    return ops / best / 1e9


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def torch_matmul_gops(dtype: torch.dtype, n: int = MATRIX_N, repeats: int = 3) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        return _best_gops(lambda: torch.mm(a, b), 2.0 * n**3, repeats)


def ort_matmul_gops(int8: bool, n: int = MATRIX_N, repeats: int = 3) -> float:
    """ONNX Runtime matrix product: uint8 x int8 -> int32 MatMulInteger (VNNI where the CPU
    has it) when ``int8``, else fp32 MatMul."""
    rng = np.random.default_rng(0)
    if int8:
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b = rng.integers(-128, 128, (n, n), dtype=np.int8)
        op, types = "MatMulInteger", (TensorProto.UINT8, TensorProto.INT32)
    else:
        a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
        op, types = "MatMul", (TensorProto.FLOAT, TensorProto.FLOAT)
    graph = helper.make_graph(
        [helper.make_node(op, ["A", "B"], ["Y"])], "matmul",
        [helper.make_tensor_value_info("A", types[0], [n, n])],
        [helper.make_tensor_value_info("Y", types[1], [n, n])],
        [numpy_helper.from_array(b, "B")])
    # IR 8 (opset 17's): onnx may default to an IR newer than the installed runtime reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, str(Path(tmp) / "matmul.onnx"))
        session = make_session(Path(tmp) / "matmul.onnx")
    return _best_gops(lambda: session.run(None, {"A": a}), 2.0 * n**3, repeats)


def ceilings(with_bf16: bool) -> dict[str, dict[str, Any]]:
    torch.set_num_threads(usable_cores())
    fp32 = max((torch_matmul_gops(torch.float32), "torch.mm fp32"),
               (ort_matmul_gops(int8=False), "onnxruntime MatMul fp32"))
    found = {
        "fp32": {"gops": fp32[0], "how": fp32[1]},
        "int8": {"gops": ort_matmul_gops(int8=True), "how": "onnxruntime MatMulInteger u8 x s8"},
    }
    if with_bf16:
        found["bf16"] = {"gops": torch_matmul_gops(torch.bfloat16), "how": "torch.mm bf16"}
    for precision, c in found.items():
        log.info("ceiling %s: %.0f GOP/s (%s, %dx%d)", precision, c["gops"], c["how"],
                 MATRIX_N, MATRIX_N)
    return found


# ---- networks -------------------------------------------------------------------------------

def main_path_gmacs(model_name: str, size: tuple[int, int]) -> float:
    """Multiply-accumulates of one eval-mode forward (the main head only), in G."""
    model = build_model(model_name, 19).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, *size))
    return counter.get_total_flops() / 2e9


def time_round_robin(segmenters: dict[str, Segmenter], frames: list[np.ndarray], warmup: int,
                     runs: int) -> dict[str, list[float]]:
    """Per-segmenter latencies (ms), one call each per round in a rotating order."""
    names = list(segmenters)
    for i in range(warmup):
        for name in names:
            segmenters[name].segment(frames[i % len(frames)])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in tqdm(range(runs), desc="rounds", unit="round", leave=False):
        frame = frames[i % len(frames)]
        for name in names[i % len(names):] + names[:i % len(names)]:
            seg = segmenters[name]
            samples[name].append(_timed(lambda s=seg, f=frame: s.segment(f)) * 1e3)
    return samples


def run(args: argparse.Namespace) -> dict[str, Any]:
    bf16 = cpu_bf16_supported()
    pairs = [p for p in PAIRS if p[1] != "bf16" or bf16]
    load_start = os.getloadavg()
    entries = []
    for size in args.sizes:
        frames = [synthetic_frame(*size, np.random.default_rng(i)) for i in range(4)]
        for model in args.models:
            title = MODEL_REGISTRY[model].spec.title
            gmacs = main_path_gmacs(model, size)
            limits = ceilings(bf16)
            segmenters = {
                f"{engine} {precision}": Segmenter(engine=engine, device="cpu",
                                                   precision=precision, network_size=size,
                                                   model_name=model)
                for engine, precision in pairs
            }
            samples: dict[str, list[float]] = {}
            for engine in dict.fromkeys(e for e, _ in pairs):
                group = {n: s for n, s in segmenters.items() if n.startswith(engine + " ")}
                samples.update(time_round_robin(group, frames, args.warmup, args.runs))
            fp32_ms = None
            for (engine, precision), name in zip(pairs, segmenters):
                stats = summarise(samples[name])
                gops = 2 * gmacs / (stats["median_ms"] / 1e3)
                entry = {"engine": engine, "precision": segmenters[name].precision,
                         "model": model, "network": title, "network_size": list(size),
                         "gmacs": round(gmacs, 2), **stats, "achieved_gops": gops,
                         "ceiling_gops": limits[precision]["gops"],
                         "ceiling_how": limits[precision]["how"],
                         "load_average_1min": round(os.getloadavg()[0], 2),
                         "of_ceiling": gops / limits[precision]["gops"],
                         "samples_ms": [round(s, 3) for s in samples[name]]}
                if engine == "onnxruntime" and precision == "fp32":
                    fp32_ms = stats["median_ms"]
                entry["vs_onnxruntime_fp32"] = stats["median_ms"] / fp32_ms if fp32_ms else None
                entries.append(entry)
                log.info("%-12s %4dx%-4d %-11s %-4s median %7.1f ms, %5.0f GOP/s = %3.0f%% of "
                         "the %s ceiling", title, *size, engine, precision,
                         stats["median_ms"], gops, 100 * entry["of_ceiling"], precision)
            del segmenters
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.10
        "command": "python -m benchmarks.cpu_precision "
        + " ".join(shlex.quote(a) for a in args.argv),
        "hardware": {**hardware_info(), "cpu_bf16": bf16},
        "load_average_1_5_15": {"start": [round(v, 2) for v in load_start],
                                "end": [round(v, 2) for v in os.getloadavg()]},
        "warmup": args.warmup, "runs": args.runs, "entries": entries,
    }


def markdown(report: dict[str, Any]) -> str:
    hw, load = report["hardware"], report["load_average_1_5_15"]
    lines = [
        f"# CPU latency per precision ({report['date']})", "",
        f"Machine: {hw['cpu']}, {hw['usable_cores']} usable cores, bf16 instructions: "
        f"{'yes' if hw['cpu_bf16'] else 'no'}; torch {hw['torch']}, onnxruntime "
        f"{hw['onnxruntime']}. Load average (1/5/15 min) at start {load['start']}, at end "
        f"{load['end']}: other processes shared the cores, so absolute times are pessimistic; "
        "precisions of one engine were interleaved round-robin, so their ratios are "
        "comparable.", "",
        f"Command: `{report['command']}`", "",
        f"uint8 frame in, uint8 labels out through `Segmenter`, frame size = network size, "
        f"random weights, median of {report['runs']} rounds after {report['warmup']} warm-up.",
        "", "Ceilings: best of 3 4096 x 4096 matrix products measured right before each "
        "network and size: " + ", ".join(sorted({f"{e['precision']} {e['ceiling_how']}"
                                                  for e in report["entries"]})) + ".", "",
        "| network | size | engine | precision | median ms | p90 ms | x ORT fp32 | GMAC "
        "| achieved GOP/s | ceiling GOP/s | of ceiling | load (1 min) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in report["entries"]:
        lines.append(
            f"| {e['network']} | {e['network_size'][0]}x{e['network_size'][1]} | {e['engine']} "
            f"| {e['precision']} | {e['median_ms']:.1f} | {e['p90_ms']:.1f} "
            f"| {e['vs_onnxruntime_fp32']:.2f} | {e['gmacs']:.1f} | {e['achieved_gops']:.0f} "
            f"| {e['ceiling_gops']:.0f} | {100 * e['of_ceiling']:.0f} % "
            f"| {e['load_average_1min']:.1f} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODEL_REGISTRY),
                        choices=tuple(MODEL_REGISTRY))
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(256, 512), (512, 1024)],
                        metavar="HxW")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15, help="rounds (one call per pair each)")
    parser.add_argument("--out", default="benchmarks", help="output folder")
    parser.add_argument("--name", default="cpu_precision", help="file stem for .json and .md")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run(args)
    write_report(args.out, args.name, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
