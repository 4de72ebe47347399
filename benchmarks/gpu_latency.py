"""GPU latency report for a GPU session: torch CUDA fp16 CUDA-graph engine via Segmenter.

Measures BiSeSTDC-Seg50 (512x1024), BiSeSTDC-Seg75 (768x1536) and STDC1-Seg50 (512x1024):
batch 1, uint8 frame in -> uint8 labels out through ``Segmenter.segment``, median and p99 of
``--runs`` (>= 200) calls timed with CUDA events after warm-up; plus fp16-vs-fp32 label
agreement on street-like synthetic frames, using networks whose BatchNorm statistics come from
such frames (so labels vary; random weights otherwise). Writes ``gpu_latency.json`` (entries
with ``median_ms``, ``p99_ms``, ``agreement``) and ``gpu_latency.md``.

Run from the repository root::

    python benchmarks/gpu_latency.py --out benchmarks
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CASES = (
    ("BiSeSTDC-Seg50", "bisestdc", (512, 1024)),
    ("BiSeSTDC-Seg75", "bisestdc", (768, 1536)),
    ("STDC1-Seg50", "stdc1", (512, 1024)),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs (>= 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--agreement-frames", type=int, default=8)
    parser.add_argument("--frame-scale", type=float, default=1.0,
                        help="frame size / network size (2.0: a 1024x2048 camera for Seg50)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=str(REPO / "benchmarks"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 200:
        raise SystemExit("--runs must be >= 200 for a p99")
    sys.path.insert(0, str(REPO))  # a script in benchmarks/, run without installing
    import torch  # noqa: PLC0415

    from bisestdc_core.cli.benchmark import hardware_info, summarise, time_segmenter  # noqa: PLC0415
    from bisestdc_core.inference import Segmenter  # noqa: PLC0415
    from bisestdc_core.inference.untrained_network import (  # noqa: PLC0415
        calibrate_batchnorm,
        synthetic_frame,
    )
    from bisestdc_core.models import build_model, save_checkpoint  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this report needs a GPU")
    rng = np.random.default_rng(0)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, model_name, size in CASES:
            torch.manual_seed(0)
            model = build_model(model_name, 19)
            calibrate_batchnorm(model, [synthetic_frame(*size, rng) for _ in range(4)])
            ckpt = Path(tmp) / f"{model_name}.pth"
            save_checkpoint(ckpt, model, model_name, "cityscapes")
            frame_hw = (round(size[0] * args.frame_scale), round(size[1] * args.frame_scale))
            frames = [synthetic_frame(*frame_hw, rng) for _ in range(args.agreement_frames)]
            fp16 = Segmenter(weights=ckpt, engine="torch", device=args.device,
                             precision="fp16", network_size=size)
            samples, stages = time_segmenter(fp16, frames, args.warmup, args.runs)
            fp32 = Segmenter(weights=ckpt, engine="torch", device=args.device,
                             precision="fp32", network_size=size)
            agree = total = 0
            for frame in frames:
                a, b = fp16.segment(frame).labels, fp32.segment(frame).labels
                agree += int((a == b).sum())
                total += a.size
            stats = summarise(samples)
            entries.append({
                "name": label, "model": model_name, "network_size": list(size),
                "frame_size": list(frame_hw), "engine": fp16.engine_name,
                "precision": "fp16", "runs": args.runs, "warmup": args.warmup,
                "median_ms": stats["median_ms"], "p90_ms": stats["p90_ms"],
                "p99_ms": stats["p99_ms"], "fps": stats["fps"],
                "stage_median_ms": stages, "agreement": agree / total,
            })
            logging.info("%s: median %.2f ms, p99 %.2f ms, agreement %.4f", label,
                         stats["median_ms"], stats["p99_ms"], agree / total)
            del fp16, fp32
            torch.cuda.empty_cache()
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python benchmarks/gpu_latency.py", *(argv or sys.argv[1:])]),
        "hardware": hardware_info(), "timing": "CUDA events, batch 1, uint8 in -> uint8 out",
        "entries": entries,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# GPU latency ({report['hardware']['gpu']}, {report['date']})", "",
             f"Command: `{report['command']}`", "",
             "| network | size | frame | median ms | p99 ms | FPS | fp16 vs fp32 labels |",
             "|---|---|---|---:|---:|---:|---:|"]
    for e in entries:
        lines.append(f"| {e['name']} | {e['network_size'][0]}x{e['network_size'][1]} | "
                     f"{e['frame_size'][0]}x{e['frame_size'][1]} | {e['median_ms']:.2f} | "
                     f"{e['p99_ms']:.2f} | {e['fps']:.0f} | {e['agreement'] * 100:.3f}% |")
    (out / "gpu_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
