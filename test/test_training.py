"""Trainer: configs, the seed's optimiser recipe, kill-and-resume, DDP with gloo."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.models import build_model, load_checkpoint_model
from bisestdc_core.training.config import ConfigError, load_config
from bisestdc_core.training.optim import build_optimizer, lr_at

CONFIG = REPO_ROOT / "training/configs/bisestdc_synthetic.yaml"
ALL_CONFIGS = sorted((REPO_ROOT / "training/configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_streets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streets")
    write_dataset(root, 6, split="train", height=64, width=128, seed=3)
    write_dataset(root, 2, split="val", height=64, width=128, seed=4)
    return root


def tiny_overrides(root: Path, out_dir: Path, iters: int, **extra) -> list[str]:
    values = {
        "model.name": "stdc1", "data.root": str(root), "data.crop_size": "[64,128]",
        "data.batch_size": 2, "data.workers": 0, "train.max_iters": iters,
        "train.ckpt_every": 1, "train.eval_every": 0, "train.log_every": 1,
        "train.out_dir": str(out_dir), "optim.warmup_iters": 2, **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]


def run_train(overrides: list[str], env=None, **kwargs) -> subprocess.Popen:
    env = dict(env or os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-m", "training.train", "--config", str(CONFIG),
                             *overrides], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def losses(out_dir: Path) -> dict[int, float]:
    """Iteration -> loss; a resumed run's records replace the killed run's."""
    records = {}
    for line in (out_dir / "losses.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records[rec["iteration"]] = rec["loss"]
    return records


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.model.name in ("bisestdc", "stdc1", "stdc2")


def test_seed_recipe_in_cityscapes_configs():
    cfg = load_config(REPO_ROOT / "training/configs/bisestdc_cityscapes_seg50.yaml")
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.01, 0.9, 5e-4)
    assert cfg.optim.warmup_iters == 1000 and cfg.optim.power == 0.9
    assert cfg.data.crop_size == [512, 1024] and cfg.train.max_iters == 160000
    assert cfg.data.scales[0] == 0.125 and cfg.data.scales[-1] == 1.5
    assert cfg.loss.aux_weight == 0.3 and cfg.loss.ohem_thresh == 0.7
    assert load_config(REPO_ROOT / "training/configs/stdc1_cityscapes_seg75.yaml"
                       ).data.eval_scale == 0.75


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(ConfigError, match="unknown key 'optim.lr_typo'"):
        load_config(CONFIG, ["optim.lr_typo=0.1"])
    with pytest.raises(ConfigError, match="'data.batch_size': expected int, got 'eight'"):
        load_config(CONFIG, ["data.batch_size=eight"])
    with pytest.raises(ConfigError, match="'train.amp' must be one of"):
        load_config(CONFIG, ["train.amp=fp8"])


def test_bad_config_file_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("model:\n  nmae: stdc1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'model.nmae'"):
        load_config(bad)


def test_missing_dataset_stops_before_work(tmp_path, capsys):
    from training.train import main

    code = main(["--config", str(CONFIG), f"data.root={tmp_path / 'nowhere'}",
                 f"train.out_dir={tmp_path / 'run'}"])
    assert code == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_optimizer_groups_follow_the_seed():
    cfg = load_config(CONFIG).optim
    model = build_model("bisestdc", 19)
    opt = build_optimizer(model, cfg)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["head_wd"]["lr"] == pytest.approx(10 * by_name["body_wd"]["lr"])
    assert by_name["body_nowd"]["weight_decay"] == 0 and by_name["head_nowd"]["weight_decay"] == 0
    head_params = {id(p) for g in ("head_wd", "head_nowd") for p in by_name[g]["params"]}
    assert id(model.ffm.convblk.conv.weight) in head_params
    assert id(model.aux_head4.conv_out.weight) in head_params
    assert id(model.backbone.features[0].conv.weight) not in head_params
    nowd = {id(p) for p in by_name["body_nowd"]["params"]}
    assert id(model.backbone.features[0].bn.weight) in nowd
    n_all = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == n_all


def test_lr_schedule_warmup_then_poly():
    cfg = load_config(CONFIG, ["optim.lr=0.01", "optim.warmup_iters=1000",
                               "optim.warmup_start_lr=1e-5"]).optim
    assert lr_at(0, cfg, 160000) == pytest.approx(1e-5)
    assert lr_at(500, cfg, 160000) == pytest.approx((1e-5 * 0.01) ** 0.5, rel=1e-6)  # geometric
    assert lr_at(1000, cfg, 160000) == pytest.approx(0.01)
    mid = 1000 + (160000 - 1000) // 2
    assert lr_at(mid, cfg, 160000) == pytest.approx(0.01 * 0.5**0.9, rel=1e-4)


@pytest.mark.slow
def test_sigkill_then_resume_continues_the_same_losses(tiny_streets, tmp_path):
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "killed"
    ref = run_train(tiny_overrides(tiny_streets, ref_dir, 8))
    out, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out
    reference = losses(ref_dir)
    assert sorted(reference) == list(range(1, 9))

    victim = run_train(tiny_overrides(tiny_streets, kill_dir, 8))
    deadline = time.time() + 300
    while time.time() < deadline:
        log = kill_dir / "losses.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    killed_at = max(losses(kill_dir))
    assert killed_at < 8, "the run finished before it could be killed"
    resumed = run_train(tiny_overrides(tiny_streets, kill_dir, 8))
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    after = losses(kill_dir)
    assert sorted(after) == list(range(1, 9))
    for it in range(1, 9):
        assert after[it] == pytest.approx(reference[it], rel=1e-5, abs=1e-6), it
    state = torch.load(kill_dir / "last.pt", weights_only=True)
    assert state["iteration"] == 8
    assert not list(kill_dir.glob(".last.pt.*.tmp"))


@pytest.mark.slow
def test_periodic_eval_writes_best_checkpoint(tiny_streets, tmp_path):
    out_dir = tmp_path / "run"
    proc = run_train(tiny_overrides(tiny_streets, out_dir, 4, **{"train.eval_every": 2,
                                                                  "data.eval_scale": 1.0}))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0
    model, meta = load_checkpoint_model(out_dir / "best.pt")
    assert meta["model"] == "stdc1" and meta["class_set"] == "cityscapes"
    assert (out_dir / "tb").is_dir() and any((out_dir / "tb").iterdir())
    summary = json.loads((out_dir / "train_summary.json").read_text())
    assert summary["images_per_s"] > 0
    assert (out_dir / "loss_curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_ddp_two_gloo_processes_stay_in_sync(tiny_streets, tmp_path):
    out_dir = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--config", str(CONFIG),
           *tiny_overrides(tiny_streets, out_dir, 3)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out_dir / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    a, b = summary["rank_param_checksums"]
    assert a == b
    # The ranks trained on different shards: the result differs from one process alone.
    model, _ = load_checkpoint_model(out_dir / "last.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_wrong_class_count_stops_at_start_up(tiny_streets, tmp_path, capsys):
    from training.train import main

    code = main(["--config", str(CONFIG),
                 *tiny_overrides(tiny_streets, tmp_path / "run", 2, **{"model.num_classes": 11})])
    assert code == 2
    assert "'model.num_classes' is 11 but synthetic has 19 classes" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_split_without_labels_stops_at_start_up(tiny_streets, tmp_path, capsys):
    import shutil

    from training.train import main

    root = tmp_path / "streets"
    shutil.copytree(tiny_streets, root)
    shutil.rmtree(root / "gtFine" / "train")
    code = main(["--config", str(CONFIG), *tiny_overrides(root, tmp_path / "run", 2)])
    assert code == 2
    err = capsys.readouterr().err
    assert "split 'train'" in err and "without labels" in err
