"""CPU training throughput and loss parity: fp32 vs bf16 autocast, with and without channels-last.

Trains the same short run (same data order, augmentation and initial weights) with
``training.train``'s Trainer once per setting, on generated street frames, and reports for each
the training images/s (over the iterations after ``--skip`` warm-up iterations, data loading
included) and how far its loss curve is from the fp32 run's: the mean absolute relative
difference per iteration and over the last quarter of the run. bf16 rounds every activation to 8
mantissa bits, so the curves are not identical; parity means the same trend and a small
relative gap. Writes ``cpu_training.json`` and ``cpu_training.md`` to ``--out``.

    python -m benchmarks.cpu_training --out benchmarks
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.training.cli import HelpFormatter
from bisestdc_core.training.config import load_config
from bisestdc_core.training.precision import cpu_supports_bf16
from bisestdc_core.training.trainer import Trainer

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "training/configs/bisestdc_synthetic.yaml"
SETTINGS = {  # name -> (train.amp, train.channels_last)
    "fp32": ("none", False),
    "fp32 + channels-last": ("none", True),
    "bf16": ("bf16", False),
    "bf16 + channels-last": ("bf16", True),
}


def read_history(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_setting(name: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    amp, channels_last = SETTINGS[name]
    out_dir = work / name.replace(" + ", "_")
    cfg = load_config(CONFIG, [
        f"model.name={args.model}", f"data.root={data}", f"data.crop_size={args.crop}",
        f"data.batch_size={args.batch}", "data.workers=0", f"train.max_iters={args.iters}",
        f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}",
        "train.eval_every=0", f"train.ckpt_every={args.iters}", f"train.out_dir={out_dir}",
        f"optim.warmup_iters={args.iters // 10}", "train.device=cpu",
    ])
    summary = Trainer(cfg).fit()
    records = read_history(out_dir / "losses.jsonl")
    # The run's own images/s includes the first iterations, where oneDNN builds its kernels;
    # the reported rate leaves out ``--skip`` of them (times come from losses.jsonl).
    steady = [r["time"] for r in records[args.skip:]]
    rate = (len(steady) - 1) * args.batch / (steady[-1] - steady[0])
    return {"amp": amp, "channels_last": channels_last, "precision": summary["precision"],
            "images_per_s": rate, "images_per_s_whole_run": summary["images_per_s"],
            "losses": [r["loss"] for r in records]}


def parity(losses: list[float], reference: list[float]) -> dict:
    rel = [abs(a - b) / abs(b) for a, b in zip(losses, reference)]
    first = (losses[0] - reference[0]) / abs(reference[0])
    tail = len(rel) // 4 or 1
    # The first iteration shares weights and batch with the reference: its difference is the
    # precision's alone. Later ones also carry the divergence every change of arithmetic
    # order starts (fp32 + channels-last shows that floor).
    return {"first_iteration_rel_diff": first,
            "mean_rel_diff": sum(rel) / len(rel), "max_rel_diff": max(rel),
            "last_quarter_mean_loss": sum(losses[-tail:]) / tail,
            "last_quarter_mean_rel_diff": sum(rel[-tail:]) / tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--model", default="bisestdc", help="network")
    parser.add_argument("--iters", type=int, default=40, help="iterations per setting")
    parser.add_argument("--skip", type=int, default=5, help="warm-up iterations not timed")
    parser.add_argument("--batch", type=int, default=8, help="crops per iteration")
    parser.add_argument("--crop", default="[128,256]", help="crop size [H,W]")
    parser.add_argument("--frames", type=int, default=32, help="generated training frames")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="settings to run (fp32 first: the parity reference)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the results go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not cpu_supports_bf16():
        print("note: this CPU has no native bf16; the bf16 settings train in fp32",
              file=sys.stderr)
    results: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "cpu_bf16": cpu_supports_bf16(), "torch": torch.__version__,
        "command": "python -m benchmarks.cpu_training " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "run": {"model": args.model, "iterations": args.iters, "timed_after": args.skip,
                "batch": args.batch, "crop": args.crop, "frames": args.frames},
        "settings": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "streets"
        write_dataset(data, args.frames, split="train", height=256, width=512, seed=1)
        for name in args.settings:
            results["settings"][name] = run_setting(name, data, Path(tmp) / "runs", args)
            print(f"{name}: {results['settings'][name]['images_per_s']:.2f} images/s",
                  flush=True)
    reference = results["settings"].get("fp32", {}).get("losses")
    for r in results["settings"].values():
        if reference is not None:
            r["parity_vs_fp32"] = parity(r["losses"], reference)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_training.json").write_text(json.dumps(results, indent=2))
    base = results["settings"].get("fp32", {}).get("images_per_s")
    lines = [f"CPU training, {args.model}, batch {args.batch} of {args.crop} crops, "
             f"{args.iters} iterations ({results['date']}, {results['threads']} threads, "
             f"torch {torch.__version__}, native bf16: {results['cpu_bf16']})", "",
             "| setting | images/s | speed-up | loss, first iteration vs fp32 | "
             "mean loss, last quarter | mean rel. loss diff vs fp32 |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results["settings"].items():
        p = r.get("parity_vs_fp32", {})
        speed = f"{r['images_per_s'] / base:.2f}x" if base else "n/a"
        lines.append(f"| {name} | {r['images_per_s']:.2f} | {speed} | "
                     f"{100 * p.get('first_iteration_rel_diff', float('nan')):+.3f} % | "
                     f"{p.get('last_quarter_mean_loss', float('nan')):.3f} | "
                     f"{100 * p.get('mean_rel_diff', float('nan')):.2f} % |")
    (args.out / "cpu_training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
