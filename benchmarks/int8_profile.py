"""Where the int8 graph's time goes: ONNX Runtime's per-operator profile, step by step.

The demo checkpoint (BiSeSTDC-Seg, 256x512) is exported once and quantized in the variants that
led to the shipped recipe, each run on the same frame with the project's session settings:

1. the plain QDQ graph (no graph rewrites), head convolution and logits resize float;
2. with the rewrites of ``bisestdc_core.inference.onnxruntime.qdq_rewrites``;
3. also without ONNX Runtime's NCHWc layout (what int8 sessions use);
4. also no float layers (what the 0.2-point float-layer bar chose for this checkpoint).

The fp32 graph runs alongside. Per variant: median latency (all graphs round-robin on one
frame), the time per operator type, and the labels' agreement with fp32::

    python -m benchmarks.int8_profile --out benchmarks
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bisestdc_core.cli.benchmark import hardware_info
from bisestdc_core.inference.calibration_data import frames_from_synthetic
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.onnxruntime.quantize import (
    graph_labels,
    label_agreement,
    quantize_onnx,
)
from bisestdc_core.inference.onnxruntime.session import make_session

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "training" / "checkpoints" / "demo" / "bisestdc_synthetic.pt"
TOP_OPERATORS = 8


def operator_times(path: Path, frame: np.ndarray, runs: int, int8: bool, prefix: Path
                   ) -> dict[str, float]:
    """ms per run by operator type, from ONNX Runtime's profiler (profiling slows a run a
    little, so latencies come from :func:`medians`)."""
    session = make_session(path, int8=int8, profile_prefix=prefix)
    for _ in range(runs):
        session.run(None, {"image": frame})
    events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3
    return {op: ms / runs for op, ms in per_op.most_common()}


def medians(graphs: dict[str, tuple[Path, bool]], frame: np.ndarray, runs: int
            ) -> dict[str, float]:
    """Median ms per graph, the graphs run round-robin in a rotating order (so drift in the
    machine's speed falls on every variant alike)."""
    sessions = {name: make_session(path, int8=int8) for name, (path, int8) in graphs.items()}
    names = list(sessions)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs + 2):  # two warm-up rounds
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            sessions[name].run(None, {"image": frame})
            if i >= 2:
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(s)) for name, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="profiled runs per graph")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    args = parser.parse_args()
    network, card = load_network(DEMO)
    size = card.network_size
    frame = next(frames_from_synthetic(1, *size, seed=3))[None]
    calib = list(frames_from_synthetic(32, *size))
    held_out = list(frames_from_synthetic(8, *size, seed=1))
    variants = [  # name, quantize_onnx options, int8 session settings
        ("1 plain QDQ, head + resize float", {"rewrites": False,
                                              "float_layers": ["head", "logits_resize"]}),
        ("2 + graph rewrites", {"float_layers": ["head", "logits_resize"]}),
        ("3 + no NCHWc layout", {"float_layers": ["head", "logits_resize"]}),
        ("4 + no float layers", {"float_layers": []}),
    ]
    lines = [f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')}  "  # noqa: UP017
             "python -m benchmarks.int8_profile",
             f"# {hardware_info()['cpu']}, {os.cpu_count()} cores, load average "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
             f"# BiSeSTDC-Seg demo checkpoint, {size[0]}x{size[1]}, median of {args.runs} "
             f"round-robin runs; then ms per run of the {TOP_OPERATORS} costliest operator types "
             "(profiled separately)"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        export_onnx(network, fp32, card, dynamic=True)
        reference = graph_labels(fp32, held_out)
        graphs = {"fp32": (fp32, False)}
        agreements = {}
        for index, (name, options) in enumerate(variants):
            graph = tmp / f"int8_{index}.onnx"
            quantize_onnx(fp32, graph, calib, **options)
            agreements[name] = label_agreement(reference, graph_labels(graph, held_out))
            # Variants 1 and 2 run with ONNX Runtime's default layout, the rest as shipped.
            graphs[name] = (graph, index >= 2)
        latency = medians(graphs, frame, args.runs)
        for name, (graph, int8) in graphs.items():
            line = f"{'' if name == 'fp32' else 'int8 '}{name}: {latency[name]:.1f} ms"
            if name in agreements:
                line += (f" ({latency[name] / latency['fp32']:.3f}x fp32), agreement with fp32 "
                         f"{100 * agreements[name]:.2f} % on {len(held_out)} frames")
            per_op = operator_times(graph, frame, args.runs, int8, tmp / graph.stem)
            lines.append(f"{line}; " + _ops(per_op))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (args.out / "int8_profile.txt").write_text(text)
    return 0


def _ops(per_op: dict[str, float]) -> str:
    return ", ".join(f"{op} {ms:.2f}" for op, ms in list(per_op.items())[:TOP_OPERATORS])


if __name__ == "__main__":
    raise SystemExit(main())
