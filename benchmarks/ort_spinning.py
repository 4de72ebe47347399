"""ONNX Runtime's idle pool threads: spinning (its default) against sleeping (this project's).

The demo checkpoint's fp32 export and its int8 QDQ graph (BiSeSTDC-Seg, 256x512) run on the
same frame, each with a spinning and a sleeping session, first with the
machine to themselves, then beside a process that keeps one core busy (what the node's own
decoding, rendering and publishing, or another node, does on a small machine)::

    python -m benchmarks.ort_spinning --out benchmarks
"""

from __future__ import annotations

import argparse
import multiprocessing
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
from bisestdc_core.inference.onnxruntime.quantize import DEFAULT_FLOAT_LAYERS, quantize_onnx
from bisestdc_core.inference.onnxruntime.session import make_session

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "training" / "checkpoints" / "demo" / "bisestdc_synthetic.pt"


def _busy(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        pass


def _medians(graphs: dict[str, Path], frame: np.ndarray, rounds: int) -> dict[str, float]:
    """Median ms per (graph, setting); each session runs its rounds back to back (so one
    session's spinning pool never overlaps another's run), in two passes of opposite order."""
    settings = [(name, spin) for name in graphs for spin in (True, False)]
    samples: dict[str, list[float]] = {}
    for order in (settings, settings[::-1]):
        for name, spin in order:
            session = make_session(graphs[name], spinning=spin)
            for _ in range(2):  # warm-up
                session.run(None, {"image": frame})
            key = f"{name} {'spinning' if spin else 'sleeping'}"
            for _ in range(rounds):
                start = time.perf_counter()
                session.run(None, {"image": frame})
                samples.setdefault(key, []).append((time.perf_counter() - start) * 1e3)
            del session
    return {n: float(np.median(s)) for n, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per condition")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    args = parser.parse_args()
    network, card = load_network(DEMO)
    frame = next(frames_from_synthetic(1, *card.network_size, seed=3))[None]
    lines = [f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')}  "  # noqa: UP017
             "python -m benchmarks.ort_spinning",
             f"# {hardware_info()['cpu']}, {os.cpu_count()} cores, load average "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
             "# BiSeSTDC-Seg demo checkpoint, 256x512, median ms of "
             f"2 x {args.rounds} runs per setting"]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_onnx(network, fp32, card, dynamic=True)
        int8 = Path(tmp) / "int8.onnx"
        quantize_onnx(fp32, int8, list(frames_from_synthetic(32, *card.network_size)),
                      float_layers=list(DEFAULT_FLOAT_LAYERS))
        graphs = {"fp32": fp32, "int8": int8}
        for condition in ("alone", "beside one busy core"):
            stop = multiprocessing.Event()
            busy = multiprocessing.Process(target=_busy, args=(stop,), daemon=True)
            if condition != "alone":
                busy.start()
            try:
                medians = _medians(graphs, frame, args.rounds)
            finally:
                stop.set()
                if busy.is_alive():
                    busy.join(5)
            lines.append(f"{condition}: " + ", ".join(f"{n} {m:.1f} ms"
                                                      for n, m in medians.items()))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    (args.out / "ort_spinning.txt").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
