"""Trainer: configs, the seed's optimiser recipe, kill-and-resume, DDP with gloo.

Trainings whose subject is not the process boundary run in this process (``train_main``):
a training subprocess spends ~3 s of CPU importing torch and plotting libraries before and
after its few iterations. Subprocesses remain where a process is killed, where DDP starts its
ranks and where loader workers fork.
"""

import contextlib
import json
import logging
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
from bisestdc_core.training.optim import (
    FINAL_LR,
    build_optimizer,
    check_schedule,
    lr_at,
    warmup_iters,
)

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
    return subprocess.Popen([sys.executable, "training/train.py", "--config", str(CONFIG),
                             *overrides], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def train_main(overrides: list[str], *flags: str) -> int:
    from bisestdc_core.cli.train import main

    return main(["--config", str(CONFIG), *flags, *overrides])


@contextlib.contextmanager
def one_thread():
    """Train in this process on one thread, as the training subprocesses do
    (OMP_NUM_THREADS=1): the kill-and-resume tests compare losses and networks of runs
    trained partly in a subprocess and partly here, which match only on the same thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def losses(out_dir: Path) -> dict[int, float]:
    """Iteration -> loss; each iteration must appear once (a resumed run cuts the log back)."""
    records = {}
    for line in (out_dir / "losses.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert rec["iteration"] not in records, f"iteration {rec['iteration']} logged twice"
        records[rec["iteration"]] = rec["loss"]
    return records


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


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
    from bisestdc_core.cli.train import main

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


@pytest.mark.parametrize("max_iters", [1, 2, 7, 60, 999, 2500, 160000])
@pytest.mark.parametrize("warmup", [0, 100, 1000])
def test_lr_curve_starts_peaks_and_ends_where_the_schedule_says(max_iters, warmup):
    cfg = load_config(CONFIG, ["optim.lr=0.02", f"optim.warmup_iters={warmup}",
                               "optim.warmup_start_lr=1e-4", "optim.power=0.9"]).optim
    warm = warmup_iters(cfg, max_iters)
    curve = [lr_at(it, cfg, max_iters) for it in range(0, max_iters + 1,
                                                          max(1, max_iters // 5000))]
    # Start: the warm-up's first lr (or the peak without warm-up); end: the final lr.
    assert curve[0] == pytest.approx(1e-4 if warm else 0.02)
    assert lr_at(max_iters, cfg, max_iters) == pytest.approx(FINAL_LR)
    assert lr_at(warm, cfg, max_iters) == pytest.approx(0.02)  # the peak, after warm-up
    # The run's last iteration trains below a tenth of the peak only when decay has room;
    # at least it is the lowest lr after the peak.
    last = lr_at(max_iters - 1, cfg, max_iters)
    after_peak = [lr_at(it, cfg, max_iters) for it in range(warm, max_iters)]
    assert last == min(after_peak)
    assert all(a >= b for a, b in zip(after_peak, after_peak[1:]))
    if max_iters - warm >= 10:
        assert last < 0.1 * 0.02
    # Warm-up never eats more than half the run, and saying so is a warning.
    assert warm <= max_iters // 2
    warning = check_schedule(cfg, max_iters)
    assert (warning is not None) == (warmup > max_iters // 2)
    if warning:
        assert f"'optim.warmup_iters' ({warmup})" in warning


def test_short_run_ends_decayed_not_at_peak():
    """The reported failure: a 60-iteration run of the 100-iteration warm-up config."""
    cfg = load_config(CONFIG).optim  # warmup_iters 100, lr 0.02
    assert cfg.warmup_iters == 100 and cfg.lr == 0.02
    assert lr_at(59, cfg, 60) < 0.002
    assert lr_at(60, cfg, 60) == FINAL_LR


# The two kill-and-resume tests compare with the same uninterrupted run, evaluating every
# iteration (what the best.pt test needs). Eight iterations hold a new best that the next
# evaluation does not beat by a clear margin in bf16 autocast (CPUs with bf16: best 4.0 % at
# iteration 3, then 2.8 %) and in fp32 (the others: 8.0 % at 6, then 7.6 %); six would leave
# fp32 one at 5 beaten by 0.02 points, too close for another CPU's rounding. The LR schedule,
# and so the sequence, depends on the count.
KILL_EXTRA = {"train.eval_every": 1, "data.eval_scale": 1.0}
KILL_ITERS = 8


@pytest.fixture(scope="module")
def reference_run(tiny_streets, tmp_path_factory) -> Path:
    """The uninterrupted run, once for both tests, in this process (its process is no subject)."""
    out_dir = tmp_path_factory.mktemp("reference")
    with one_thread():
        assert train_main(tiny_overrides(tiny_streets, out_dir, KILL_ITERS, **KILL_EXTRA)) == 0
    return out_dir


def resume_here(root: Path, out_dir: Path, caplog) -> None:
    """Resume a killed run to its end in this process (a fresh start would pass unnoticed
    without the log line)."""
    with caplog.at_level(logging.INFO), one_thread():
        assert train_main(tiny_overrides(root, out_dir, KILL_ITERS, **KILL_EXTRA)) == 0
    assert f"resumed from {out_dir / 'last.pt'}" in caplog.text


@pytest.mark.slow
def test_sigkill_then_resume_continues_the_same_losses(tiny_streets, tmp_path, reference_run,
                                                       caplog):
    kill_dir = tmp_path / "killed"
    victim = run_train(tiny_overrides(tiny_streets, kill_dir, KILL_ITERS, **KILL_EXTRA))
    deadline = time.time() + 300
    while time.time() < deadline:
        log = kill_dir / "losses.jsonl"
        # Logged iteration 2: last.pt of iteration 1 is written, whatever is being written now.
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    killed_at = max(losses(kill_dir))
    assert killed_at < KILL_ITERS, "the run finished before it could be killed"
    resume_here(tiny_streets, kill_dir, caplog)
    reference = losses(reference_run)
    assert sorted(reference) == list(range(1, KILL_ITERS + 1))
    after = losses(kill_dir)
    assert sorted(after) == list(range(1, KILL_ITERS + 1))
    for it in range(1, KILL_ITERS + 1):
        assert after[it] == pytest.approx(reference[it], rel=1e-5, abs=1e-6), it
    state = torch.load(kill_dir / "last.pt", weights_only=True)
    assert state["iteration"] == KILL_ITERS
    assert not list(kill_dir.glob(".last.pt.*.tmp"))
    assert oct((kill_dir / "last.pt").stat().st_mode & 0o777) == "0o644"


@pytest.mark.slow
def test_periodic_eval_writes_best_checkpoint(tiny_streets, tmp_path):
    out_dir = tmp_path / "run"
    with one_thread():
        assert train_main(tiny_overrides(tiny_streets, out_dir, 4, **{"train.eval_every": 2,
                                                                      "data.eval_scale": 1.0})) == 0
    # The run's train.log handler left with the run (a later in-process run must not write
    # into this one's log).
    assert not [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)
                and Path(h.baseFilename).parent == out_dir]
    assert (out_dir / "train.log").is_file()
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0
    evaluations = read_jsonl(out_dir / "evaluations.jsonl")
    assert [e["iteration"] for e in evaluations] == [2, 4]
    best = max(evaluations, key=lambda e: e["miou"])
    assert metrics["iteration"] == best["iteration"] and metrics["checkpoint"] == "best.pt"
    assert metrics["protocol"]["scales"] == [1.0] and metrics["split"] == "val"
    model, meta = load_checkpoint_model(out_dir / "best.pt")
    assert meta["model"] == "stdc1" and meta["class_set"] == "cityscapes"
    assert meta["iteration"] == best["iteration"] and meta["eval_scale"] == 1.0
    for name in ("best.pt", "last.pt"):
        assert oct((out_dir / name).stat().st_mode & 0o777) == "0o644", name
    assert (out_dir / "tb").is_dir() and any((out_dir / "tb").iterdir())
    summary = json.loads((out_dir / "train_summary.json").read_text())
    assert summary["images_per_s"] > 0
    assert (out_dir / "loss_curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_ddp_two_gloo_processes_stay_in_sync(tiny_streets, tmp_path):
    out_dir = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "training/train.py", "--config", str(CONFIG),
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
    from bisestdc_core.cli.train import main

    code = main(["--config", str(CONFIG),
                 *tiny_overrides(tiny_streets, tmp_path / "run", 2, **{"model.num_classes": 11})])
    assert code == 2
    assert "'model.num_classes' is 11 but synthetic has 19 classes" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_split_without_labels_stops_at_start_up(tiny_streets, tmp_path, capsys):
    import shutil

    from bisestdc_core.cli.train import main

    root = tmp_path / "streets"
    shutil.copytree(tiny_streets, root)
    shutil.rmtree(root / "gtFine" / "train")
    code = main(["--config", str(CONFIG), *tiny_overrides(root, tmp_path / "run", 2)])
    assert code == 2
    err = capsys.readouterr().err
    assert "split 'train'" in err and "without labels" in err


# ---- resume that tells the truth --------------------------------------------------------


@pytest.mark.slow
def test_resume_refuses_trajectory_changes_unless_allowed(tiny_streets, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main(tiny_overrides(tiny_streets, run, 2)) == 0
    first_config = (run / "config.yaml").read_text()
    capsys.readouterr()

    changed = tiny_overrides(tiny_streets, run, 3, **{"data.batch_size": 3})
    assert train_main(changed) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{run / 'last.pt'} was trained with a different config" in err
    assert "data.batch_size: 2 -> 3" in err and "train.max_iters: 2 -> 3" in err
    assert "--allow-config-change" in err
    assert torch.load(run / "last.pt", weights_only=True)["iteration"] == 2

    # Where and how often things are written may change without a flag (and is recorded).
    assert train_main(tiny_overrides(tiny_streets, run, 2, **{"train.log_every": 2})) == 0

    assert train_main(changed, "--allow-config-change") == 0
    assert torch.load(run / "last.pt", weights_only=True)["iteration"] == 3
    assert (run / "config.yaml").read_text() == first_config  # the first config is kept
    records = read_jsonl(run / "config_changes.jsonl")
    assert [r["iteration"] for r in records] == [2, 2]
    assert records[0]["changes"] == [{"key": "train.log_every", "old": 1, "new": 2,
                                      "alters_trajectory": False}]
    keys = {c["key"]: c for c in records[1]["changes"]}
    assert keys["data.batch_size"] == {"key": "data.batch_size", "old": 2, "new": 3,
                                       "alters_trajectory": True}
    assert sorted(losses(run)) == [1, 2, 3]


def test_resume_refuses_a_checkpoint_that_is_not_a_training_checkpoint(tiny_streets, tmp_path,
                                                                      capsys):
    from bisestdc_core.models import save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "last.pt", build_model("stdc1", 19), "stdc1", "cityscapes")
    assert train_main(tiny_overrides(tiny_streets, run, 2)) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert f"{run / 'last.pt'}: not a training checkpoint (no optimizer" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_resume_cuts_logs_back_to_the_checkpoint(tiny_streets, tmp_path):
    run = tmp_path / "run"
    assert train_main(tiny_overrides(tiny_streets, run, 3, **{"train.ckpt_every": 2})) == 0
    # A run killed after iteration 3 but resumed from the checkpoint of iteration 2 repeats 3.
    state = torch.load(run / "last.pt", weights_only=False)
    state["iteration"] = 2
    torch.save(state, run / "last.pt")
    with open(run / "losses.jsonl", "a") as f:
        f.write('{"iteration": 4, "loss": 1.0')  # half a line, as SIGKILL can leave
    assert train_main(tiny_overrides(tiny_streets, run, 3, **{"train.ckpt_every": 2})) == 0
    assert sorted(losses(run)) == [1, 2, 3]


def test_cuda_device_without_cuda_is_one_line(tiny_streets, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code = train_main(tiny_overrides(tiny_streets, tmp_path / "run", 2,
                                     **{"train.device": "cuda"}))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [err]
    assert "'train.device' is cuda but" in err
    assert not (tmp_path / "run").exists()


KILL_AFTER_BEST = """
import os, signal, sys
from pathlib import Path
from bisestdc_core.training import trainer

kill_at = int(sys.argv[1])
save = trainer.atomic_save

def save_then_die(obj, path):
    save(obj, path)
    if Path(path).name == "best.pt" and obj["iteration"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # right after the new best, before last.pt

trainer.atomic_save = save_then_die
from bisestdc_core.cli.train import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_best_after_kill_right_after_a_new_best_equals_uninterrupted(tiny_streets, tmp_path,
                                                                  reference_run, caplog):
    extra = KILL_EXTRA
    kill_dir = tmp_path / "killed"
    ref_dir = reference_run
    reference = read_jsonl(ref_dir / "evaluations.jsonl")
    # Kill at a new best that the next evaluation does not beat: a resumed run that forgot
    # this best would then write a worse best.pt.
    kill_at = next(e["iteration"] for prev, e, nxt in zip(reference, reference[1:],
                                                          reference[2:])
                   if e["miou"] > prev["best_miou"] and nxt["miou"] < e["miou"])

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    victim = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_BEST, str(kill_at), "--config", str(CONFIG),
         *tiny_overrides(tiny_streets, kill_dir, KILL_ITERS, **extra)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    assert torch.load(kill_dir / "best.pt", weights_only=True)["iteration"] == kill_at

    resume_here(tiny_streets, kill_dir, caplog)
    after = read_jsonl(kill_dir / "evaluations.jsonl")
    assert [(e["iteration"], e["best_iteration"]) for e in after] == \
        [(e["iteration"], e["best_iteration"]) for e in reference]
    for got, want in zip(after, reference):
        assert got["best_miou"] == pytest.approx(want["best_miou"], abs=1e-9), got["iteration"]
    best_ref = torch.load(ref_dir / "best.pt", weights_only=True)
    best_got = torch.load(kill_dir / "best.pt", weights_only=True)
    assert best_got["iteration"] == best_ref["iteration"]
    for name, tensor in best_ref["state_dict"].items():
        torch.testing.assert_close(best_got["state_dict"][name], tensor, rtol=1e-5, atol=1e-6)
    metrics = json.loads((kill_dir / "metrics.json").read_text())
    assert metrics["iteration"] == best_ref["iteration"]


# ---- CPU precision ------------------------------------------------------------------------


def test_autocast_choice_follows_the_device():
    from bisestdc_core.training.precision import autocast_dtype, cpu_supports_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("none", cpu) is None
    assert autocast_dtype("fp16", cpu) is None  # fp16 autocast needs CUDA and a scaler
    assert autocast_dtype("bf16", cpu) == (torch.bfloat16 if cpu_supports_bf16() else None)


@pytest.mark.slow
def test_bf16_step_loss_matches_fp32(tiny_streets, tmp_path):
    """One step from the same weights and batch: bf16 autocast changes the loss by < 2 %."""
    import copy

    from bisestdc_core.losses import SegLoss
    from bisestdc_core.training.data import build_train_dataset, collate
    from bisestdc_core.training.precision import cpu_supports_bf16
    from bisestdc_core.training.trainer import train_step

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16")
    cfg = load_config(CONFIG, tiny_overrides(tiny_streets, tmp_path / "run", 1))
    samples = build_train_dataset(cfg)
    images, labels = collate([samples[(0, i)] for i in range(2)])
    torch.manual_seed(0)
    model = build_model("stdc1", 19).train()
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    results = {}
    for dtype in (None, torch.bfloat16):
        net = copy.deepcopy(model)
        results[dtype] = train_step(net, SegLoss.from_config(cfg.loss),
                                    build_optimizer(net, cfg.optim), scaler, images, labels,
                                    dtype, 0)
    fp32, bf16 = results[None]["loss"], results[torch.bfloat16]["loss"]
    assert fp32 != bf16, "bf16 autocast did not change the arithmetic"
    assert bf16 == pytest.approx(fp32, rel=0.02)


@pytest.mark.slow  # a training subprocess with two loader workers
def test_loader_workers_start_after_the_dataset_check(tmp_path):
    """Workers fork after the main process decoded every image for the dataset check: an
    OpenCV thread pool alive at that moment would hang each worker in its first OpenCV call."""
    root = tmp_path / "streets"
    write_dataset(root, 4, split="train", height=256, width=512, seed=5)
    overrides = tiny_overrides(root, tmp_path / "run", 2, **{"data.workers": 2,
                                                            "data.crop_size": "[128,256]"})
    proc = run_train(overrides, env=dict(os.environ, OMP_NUM_THREADS="2"),
                     start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the workers too: they hold the output pipe
        output, _ = proc.communicate()
        pytest.fail(f"training with loader workers hung:\n{output[-2000:]}")
    assert proc.returncode == 0, output[-2000:]
    assert sorted(losses(tmp_path / "run")) == [1, 2]
