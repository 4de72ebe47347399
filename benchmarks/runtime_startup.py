"""Start-up of segment_node with an ONNX graph vs the same model as a ``.pt`` checkpoint.

Each run starts ``python -m bisestdc_ros.cli.segment_node`` (engine onnxruntime, CPU) in a
subprocess and measures the time from the start to its "segmenting ..." log line and, at that
moment, its resident memory (``VmRSS`` of ``/proc/<pid>/status``) and whether torch is mapped
into it (``libtorch`` in ``/proc/<pid>/maps``); the node is then stopped by its PID with SIGINT.

* ``onnx``: the node given the exported graph: no torch (the issue "A torch-free runtime").
* ``pt (warm)``: the node given the checkpoint: torch reads it, the export on the fly is
  found in the cache (the usual restart).
* ``pt (cold)``: the same with an empty cache: the export itself, once, first.

The ONNX graph is the export the node makes of the checkpoint (dynamic input, rgb, no
confidence). Runs alternate onnx / pt (warm) ``--repeats`` times; the medians are printed side
by side. Discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, domain 90).

    python -m benchmarks.runtime_startup                      # an untrained stdc1, 512x1024
    python -m benchmarks.runtime_startup --weights ckpt.pt --model-name bisestdc

Goal with ONNX: <= 1.5 s to segmenting and <= 250 MB resident. The first lines printed give
the command, date, machine and load average: other processes on a shared machine slow the
start-up (imports are CPU-bound).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bisestdc_ros.node.process import node_log_tail, segment_node_command, start_node, stop_node

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "config" / "segment.yaml"
CAMERA = "/bench/image_raw"
DOMAIN_ID = "90"
READY = "segmenting "
GOAL_S, GOAL_MB = 1.5, 250.0


@dataclass
class Run:
    label: str
    startup_s: float
    rss_mb: float
    torch_mapped: bool


def untrained_checkpoint(path: Path, model_name: str) -> Path:
    import torch  # noqa: PLC0415 - making the checkpoint is the benchmark's, not the node's

    from bisestdc_core.models import build_model, save_checkpoint  # noqa: PLC0415

    torch.manual_seed(0)
    save_checkpoint(path, build_model(model_name, 19), model_name, "cityscapes")
    return path


def export_like_the_node(weights: Path, model_name: str, network_size: tuple[int, int],
                         directory: Path) -> Path:
    """The graph the node exports of ``weights`` for engine onnxruntime (dynamic, rgb)."""
    from bisestdc_core.inference.checkpoint_source import (  # noqa: PLC0415
        export_cached,
        load_network,
    )

    model, card = load_network(weights, model_name, 19)
    card = card.replace(network_size=network_size)
    return export_cached(model, card, weights, channel_order="rgb", dynamic=True,
                         confidence=False, directory=directory)


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def torch_mapped(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text(errors="replace")


def start_once(label: str, model_args: list[str], env: dict[str, str], log_path: Path,
               timeout: float) -> Run:
    """Start the node, wait for its segmenting line, measure, stop it by PID with SIGINT."""
    command = segment_node_command([
        "--params-file", str(CONFIG), "-p", f"image_topics:=['{CAMERA}']",
        "-p", "engine:=onnxruntime", "-p", "device:=cpu", *model_args])
    t0 = time.monotonic()
    process = start_node(command, log_path, env=env)
    try:
        while True:
            if READY in log_path.read_text(errors="replace"):
                startup = time.monotonic() - t0
                return Run(label, startup, vm_rss_mb(process.pid), torch_mapped(process.pid))
            if process.poll() is not None:
                raise RuntimeError(f"{label}: the node exited ({process.returncode}):\n"
                                   + node_log_tail(log_path))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{label}: no segmenting line within {timeout} s:\n"
                                   + node_log_tail(log_path))
            time.sleep(0.005)
    finally:
        stop_node(process)


def machine_lines(argv: list[str]) -> list[str]:
    from bisestdc_core.cli.benchmark import cpu_model  # noqa: PLC0415

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        "command: python -m benchmarks.runtime_startup " + shlex.join(argv),
        f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs visible, "
        f"{len(os.sched_getaffinity(0))} usable",
        f"load average (1, 5, 15 min) at start: {load}",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", help="a project checkpoint (default: an untrained one)")
    parser.add_argument("--model-name", default="stdc1")
    parser.add_argument("--network-size", type=int, nargs=2, default=(512, 1024),
                        metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3, help="onnx / pt (warm) pairs")
    parser.add_argument("--timeout", type=float, default=180.0, help="per start, seconds")
    args = parser.parse_args(argv)
    for line in machine_lines(argv):
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="runtime-startup-") as tmp_name:
        tmp = Path(tmp_name)
        weights = Path(args.weights) if args.weights else untrained_checkpoint(
            tmp / f"{args.model_name}_untrained.pt", args.model_name)
        size = (int(args.network_size[0]), int(args.network_size[1]))
        onnx_path = export_like_the_node(weights, args.model_name, size, tmp / "export")
        env = dict(os.environ, ROS_DOMAIN_ID=DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   ROS_LOCALHOST_ONLY="1", PYTHONUNBUFFERED="1",
                   BISESTDC_CACHE_DIR=str(tmp / "cache"))
        pt_args = ["-p", f"weights:={weights}", "-p", f"model_name:={args.model_name}",
                   "-p", f"network_height:={size[0]}", "-p", f"network_width:={size[1]}"]
        onnx_args = ["-p", f"onnx:={onnx_path}"]
        print(f"model: {weights.name} ({args.model_name}, network {size[0]}x{size[1]}), "
              f"graph {onnx_path.name}", flush=True)

        runs = [start_once("pt (cold)", pt_args, env, tmp / "cold.log", args.timeout)]
        for index in range(args.repeats):
            runs.append(start_once("onnx", onnx_args, env, tmp / f"onnx{index}.log",
                                   args.timeout))
            runs.append(start_once("pt (warm)", pt_args, env, tmp / f"pt{index}.log",
                                   args.timeout))

    print(f"\n{'run':<12} {'to segmenting s':>16} {'VmRSS MB':>10}  torch mapped")
    for run in runs:
        print(f"{run.label:<12} {run.startup_s:>16.2f} {run.rss_mb:>10.0f}  "
              f"{'yes' if run.torch_mapped else 'no'}")
    print(f"\nmedians over {args.repeats} starts each (pt cold: 1 start)")
    print(f"{'':<22} {'onnx':>10} {'pt (warm)':>10} {'pt (cold)':>10}")
    medians = {label: (statistics.median(r.startup_s for r in runs if r.label == label),
                       statistics.median(r.rss_mb for r in runs if r.label == label))
               for label in ("onnx", "pt (warm)", "pt (cold)")}
    print(f"{'to segmenting, s':<22} " + " ".join(f"{medians[k][0]:>10.2f}" for k in medians))
    print(f"{'VmRSS, MB':<22} " + " ".join(f"{medians[k][1]:>10.0f}" for k in medians))
    onnx_s, onnx_mb = medians["onnx"]
    verdict = "met" if onnx_s <= GOAL_S and onnx_mb <= GOAL_MB else "NOT met"
    print(f"goal with ONNX (<= {GOAL_S} s, <= {GOAL_MB:.0f} MB): {verdict}")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average (1, 5, 15 min) at the end: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
