"""The evaluation command line (training/evaluate.py) as a tool: the card's scale by default,
one-line user errors (#19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.evaluation.evaluator import SEED_EVAL_SCALE, card_eval_scale
from bisestdc_core.models import build_model, save_checkpoint


@pytest.fixture(scope="module")
def val_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streets")
    write_dataset(root, 2, split="val", height=64, width=128, seed=5)
    return root


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return build_model("stdc1", 19)


@pytest.fixture(scope="module")
def card_less_checkpoint(network, tmp_path_factory) -> Path:
    """``network`` saved without card fields, once: the refusals only read it."""
    ckpt = tmp_path_factory.mktemp("ckpt") / "net.pt"
    save_checkpoint(ckpt, network, "stdc1", "cityscapes")
    return ckpt


def evaluate_main(*args: str) -> int:
    from bisestdc_core.cli.evaluate import main

    return main([*args, "--no-progress", "--device", "cpu"])


@pytest.mark.parametrize("card,scale", [
    ({"eval_scale": 1.0, "iteration": 7}, 1.0),
    ({"network_size": [32, 64]}, 0.5 * 1.0),  # 32 / 64-pixel-high images
    ({"network_size": [64, 128]}, 1.0),
    ({}, SEED_EVAL_SCALE),
])
@pytest.mark.slow
def test_scale_defaults_to_the_card(card, scale, network, val_root, tmp_path):
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, network, "stdc1", "cityscapes", **card)
    out = tmp_path / "eval"
    assert evaluate_main("--weights", str(ckpt), "--dataset", "synthetic", "--root",
                         str(val_root), "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"]["scales"] == [scale]
    assert metrics["checkpoint"] == str(ckpt)
    assert metrics["iteration"] == card.get("iteration")


def test_card_scale_sources_in_order():
    meta = {"eval_scale": 0.75, "val_metrics": {"protocol": {"scales": [1.0]}},
            "config": {"data": {"eval_scale": 0.5}}, "network_size": [512, 1024]}
    assert card_eval_scale(meta, 1024) == (0.75, "checkpoint card 'eval_scale'")
    del meta["eval_scale"]
    assert card_eval_scale(meta, 1024)[0] == 1.0
    del meta["val_metrics"]
    assert card_eval_scale(meta, 1024)[0] == 0.5
    del meta["config"]
    assert card_eval_scale(meta, 1024)[0] == 0.5
    assert card_eval_scale(meta, 512)[0] == 1.0


@pytest.mark.parametrize("args,message", [
    (["--weights", "nowhere.pt"], "error: --weights: no such file: nowhere.pt"),
    (["--scale", "0"], "error: --scale/--scales: 0.0 is outside 0.05..8"),
    (["--scales", "0.5", "-1"], "error: --scale/--scales: -1.0 is outside 0.05..8"),
    (["--limit", "0"], "error: --limit: 0 must be at least 1"),
    (["--root", "nowhere"], "error: --root: dataset folder not found: nowhere"),
    (["--dataset", "camvid"], "error: --root: "),
])
@pytest.mark.slow
def test_user_errors_are_one_line_exit_2(args, message, card_less_checkpoint, val_root, tmp_path,
                                        capsys):
    base = {"--weights": str(card_less_checkpoint), "--dataset": "synthetic",
            "--root": str(val_root)}
    for flag in args[::2]:
        base.pop(flag, None)  # the test's value replaces the default one
    argv = [x for kv in base.items() for x in kv] + args + ["--out", str(tmp_path / "o")]
    assert evaluate_main(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith(message), err


def test_not_a_checkpoint_is_one_line_and_debug_shows_traceback(val_root, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip file")
    argv = ["--weights", str(bad), "--dataset", "synthetic", "--root", str(val_root), "--out",
            str(tmp_path / "o")]
    assert evaluate_main(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and f"{bad}: not a readable checkpoint" in err
    from bisestdc_core.models import CheckpointError

    with pytest.raises(CheckpointError):
        evaluate_main(*argv, "--debug")


@pytest.mark.slow
def test_help_shows_defaults():
    """The script as a user runs it: the flags (test_evaluator.py checked these in a second
    run of the same command) and the defaults its help shows."""
    proc = subprocess.run([sys.executable, "training/evaluate.py", "--help"], cwd=REPO_ROOT,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--weights", "--scales", "--flip", "--save-predictions", "--dataset"):
        assert flag in proc.stdout
    text = " ".join(proc.stdout.split())
    for shown in ("dataset layout (default: cityscapes)", "split to evaluate (default: val)",
                  "default: the checkpoint card's eval_scale", "(default: cpu)"
                  if not torch.cuda.is_available() else "(default: cuda)"):
        assert shown in text, shown


def test_gpu_benchmark_refuses_on_cpu_with_the_reason(tmp_path, capsys):
    """Its main() in this process (a second interpreter importing torch only to print the
    refusal cost seconds): exit status 2, one line, nothing written."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from benchmarks import camvid_gpu

    assert camvid_gpu.main(["--work-dir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "needs a CUDA GPU but" in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()
