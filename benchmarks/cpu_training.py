"""CPU training throughput and loss parity: fp32 vs bf16 autocast, with and without channels-last.

Throughput: the trainer's own optimisation step (``trainer.train_step``: autocast forward,
loss, backward, SGD) on one fixed batch of augmented crops, for every setting from the same
initial weights. The settings take turns, one step each, for ``--rounds`` rounds and the median
step time gives images/s: on a shared machine the load drifts, and turns spread that drift
over all settings alike instead of favouring whichever ran while the machine was quiet.

Parity: the same short run (same data order, augmentation and initial weights) with
``Trainer`` once per setting, compared with the fp32 run per iteration. The first iteration
shares weights and batch with fp32, so its difference is the precision's alone; later ones also
carry the divergence that any change of arithmetic order starts (fp32 + channels-last shows
that floor). Writes ``cpu_training.json`` and ``cpu_training.md`` to ``--out``.

    python -m benchmarks.cpu_training --out benchmarks
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bisestdc_core.cli.boundary import HelpFormatter
from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.losses import SegLoss
from bisestdc_core.models import build_model
from bisestdc_core.training.config import Config, load_config
from bisestdc_core.training.data import build_train_dataset, collate
from bisestdc_core.training.optim import build_optimizer
from bisestdc_core.training.precision import autocast_dtype, cpu_supports_bf16
from bisestdc_core.training.trainer import Trainer, train_step

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "training/configs/bisestdc_synthetic.yaml"
SETTINGS = {  # name -> (train.amp, train.channels_last)
    "fp32": ("none", False),
    "fp32 + channels-last": ("none", True),
    "bf16": ("bf16", False),
    "bf16 + channels-last": ("bf16", True),
}
CPU = torch.device("cpu")


def config_for(name: str, data: Path, out_dir: Path, args: argparse.Namespace,
               iters: int) -> Config:
    amp, channels_last = SETTINGS[name]
    return load_config(CONFIG, [
        f"model.name={args.model}", f"data.root={data}", f"data.crop_size={args.crop}",
        f"data.batch_size={args.batch}", "data.workers=0", f"train.max_iters={iters}",
        f"train.amp={amp}", f"train.channels_last={str(channels_last).lower()}",
        "train.eval_every=0", f"train.ckpt_every={iters}", f"train.out_dir={out_dir}",
        f"optim.warmup_iters={iters // 10}", "train.device=cpu",
    ])


def time_settings(data: Path, work: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per training step for each setting, the settings taking turns."""
    cfg = config_for("fp32", data, work / "timing", args, args.rounds)
    samples = build_train_dataset(cfg)
    images, labels = collate([samples[(0, i % len(samples))] for i in range(args.batch)])
    torch.manual_seed(0)
    initial = build_model(args.model, cfg.model.num_classes).train()
    criterion = SegLoss.from_config(cfg.loss)
    runs = {}
    for name in args.settings:
        amp, channels_last = SETTINGS[name]
        model = copy.deepcopy(initial)
        batch = images
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            batch = images.contiguous(memory_format=torch.channels_last)
        runs[name] = (model, build_optimizer(model, cfg.optim), batch,
                      autocast_dtype(amp, CPU))
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(args.rounds):
        for name, (model, optimizer, batch, dtype) in runs.items():
            start = time.perf_counter()
            train_step(model, criterion, optimizer, scaler, batch, labels, dtype, round_index)
            times[name].append(time.perf_counter() - start)
        print(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
            f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    return times


def parity(losses: list[float], reference: list[float]) -> dict:
    rel = [abs(a - b) / abs(b) for a, b in zip(losses, reference)]
    tail = len(rel) // 4 or 1
    return {"first_iteration_rel_diff": (losses[0] - reference[0]) / abs(reference[0]),
            "mean_rel_diff": sum(rel) / len(rel), "max_rel_diff": max(rel),
            "last_quarter_mean_loss": sum(losses[-tail:]) / tail,
            "last_quarter_mean_rel_diff": sum(rel[-tail:]) / tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--model", default="bisestdc", help="network")
    parser.add_argument("--batch", type=int, default=4, help="crops per step")
    parser.add_argument("--crop", default="[128,256]", help="crop size [H,W]")
    parser.add_argument("--rounds", type=int, default=10,
                        help="timed steps per setting (the first two are warm-up)")
    parser.add_argument("--iters", type=int, default=20, help="iterations of each parity run")
    parser.add_argument("--frames", type=int, default=16, help="generated training frames")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                        help="settings to run (fp32 is the parity reference)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the results go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not cpu_supports_bf16():
        print("note: this CPU has no native bf16; the bf16 settings train in fp32",
              file=sys.stderr)
    results: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()),
        "cpu_bf16": cpu_supports_bf16(), "torch": torch.__version__,
        "command": "python -m benchmarks.cpu_training " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "run": {"model": args.model, "batch": args.batch, "crop": args.crop,
                "rounds": args.rounds, "parity_iterations": args.iters},
        "settings": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "streets"
        write_dataset(data, args.frames, split="train", height=256, width=512, seed=1)
        times = time_settings(data, Path(tmp), args)
        for name in args.settings:
            steady = times[name][2:]
            out_dir = Path(tmp) / "runs" / name.replace(" + ", "_")
            summary = Trainer(config_for(name, data, out_dir, args, args.iters)).fit()
            losses = [json.loads(line)["loss"]
                      for line in (out_dir / "losses.jsonl").read_text().splitlines()]
            results["settings"][name] = {
                "amp": SETTINGS[name][0], "channels_last": SETTINGS[name][1],
                "precision": summary["precision"],
                "step_seconds": times[name], "median_step_s": statistics.median(steady),
                "images_per_s": args.batch / statistics.median(steady), "losses": losses}
    results["load_average_at_end"] = list(os.getloadavg())
    reference = results["settings"].get("fp32", {}).get("losses")
    for r in results["settings"].values():
        if reference is not None:
            r["parity_vs_fp32"] = parity(r["losses"], reference)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_training.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, args.out / "cpu_training.md")
    print((args.out / "cpu_training.md").read_text())
    return 0


def write_markdown(results: dict, path: Path) -> None:
    run = results["run"]
    base = results["settings"].get("fp32", {}).get("images_per_s")
    lines = [
        f"CPU training, {run['model']}, batch {run['batch']} of {run['crop']} crops "
        f"({results['date']}, {results['cpu']}, {results['threads']} threads, torch "
        f"{results['torch']}, native bf16: {results['cpu_bf16']}, load average "
        f"{results['load_average_at_start'][0]:.1f} at the start, "
        f"{results['load_average_at_end'][0]:.1f} at the end)",
        "",
        f"images/s: median of {run['rounds'] - 2} alternating timed steps; loss: "
        f"{run['parity_iterations']}-iteration runs from the same weights and data.",
        "",
        "| setting | images/s | vs fp32 | loss, iteration 1 vs fp32 | "
        "mean loss, last quarter | mean rel. loss diff vs fp32 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["settings"].items():
        p = r.get("parity_vs_fp32", {})
        speed = f"{r['images_per_s'] / base:.2f}x" if base else "n/a"
        lines.append(f"| {name} | {r['images_per_s']:.2f} | {speed} | "
                     f"{100 * p.get('first_iteration_rel_diff', float('nan')):+.3f} % | "
                     f"{p.get('last_quarter_mean_loss', float('nan')):.3f} | "
                     f"{100 * p.get('mean_rel_diff', float('nan')):.2f} % |")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
