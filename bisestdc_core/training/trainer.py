"""The training loop, in labelled steps: set-up, data, model, optimiser, resume, loop.

Checkpoints: ``last.pt`` (everything needed to resume, written atomically every
``train.ckpt_every`` iterations) and ``best.pt`` (the best network by val mIoU, project
checkpoint format). A run killed at any moment resumes from ``last.pt`` and continues the same
loss trajectory, because the data order and augmentations are functions of the iteration.
When an iteration both evaluates and checkpoints, it evaluates first, so ``last.pt`` always
knows the best mIoU so far and a resumed run keeps the same ``best.pt`` as an uninterrupted one.

A resumed run keeps its first ``config.yaml``, refuses a config that alters the trajectory
(unless allowed; then the change is recorded in ``config_changes.jsonl``) and cuts
``losses.jsonl`` and ``evaluations.jsonl`` back to the checkpoint's iteration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import cv2
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from bisestdc_core.artefacts import atomic_write_text, remove_stale_temps
from bisestdc_core.data.check import check_split
from bisestdc_core.data.registry import build_dataset
from bisestdc_core.losses import SegLoss
from bisestdc_core.models import build_model, make_checkpoint
from bisestdc_core.models.checkpoint import atomic_save, read_file
from bisestdc_core.safe_files import check_output_dir
from bisestdc_core.training import distributed
from bisestdc_core.training.config import Config, ConfigError, dump_config
from bisestdc_core.training.data import build_train_dataset, build_train_loader
from bisestdc_core.training.optim import build_optimizer, check_schedule, lr_at, set_lr
from bisestdc_core.training.precision import autocast, autocast_dtype, precision_name
from bisestdc_core.training.resume import (
    check_resume,
    check_training_checkpoint,
    cut_history,
    record_changes,
)

log = logging.getLogger(__name__)


def _check_trainable(dataset: Any, cfg: Config, split: str) -> None:
    """Stop at start-up, not at the first batch or evaluation, on data that cannot train."""
    unlabelled = [name for name, _image, label in dataset.items if label is None]
    if unlabelled:
        raise ConfigError(f"'data.root': split '{split}' of {cfg.data.root} has "
                          f"{len(unlabelled)} image(s) without labels, e.g. {unlabelled[0]}")
    if dataset.class_set.num_classes != cfg.model.num_classes:
        raise ConfigError(
            f"'model.num_classes' is {cfg.model.num_classes} but {cfg.data.dataset} has "
            f"{dataset.class_set.num_classes} classes ({dataset.class_set.name})")


def train_step(model: nn.Module, criterion: SegLoss, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, images: torch.Tensor, labels: torch.Tensor,
               amp_dtype: torch.dtype | None, iteration: int) -> dict[str, float]:
    """One optimisation step on a batch (images: N x 3 x H x W, labels: N x H x W).

    Returns:
        The total loss and its parts as floats.
    """
    with autocast(amp_dtype, images.device):
        outputs = model(images)
    loss, parts = criterion(outputs, labels)
    # One device-to-host transfer for every logged number: each .item() would be a separate
    # synchronisation of the GPU.
    values = dict(zip(("loss", *parts), torch.stack([loss.detach(), *parts.values()]).tolist()))
    if not math.isfinite(values["loss"]):
        raise FloatingPointError(f"loss is {values['loss']} at iteration {iteration}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return values


@contextlib.contextmanager
def _dataset_errors_named(root: str, split_key: str):
    """A dataset folder that cannot be listed is a config error, not a bug: of 'data.root'
    when the root folder is not there, else of the split's key (``split_key``)."""
    try:
        yield
    except (OSError, ValueError) as exc:
        key = split_key if Path(root).is_dir() else "data.root"
        raise ConfigError(f"'{key}': {exc}") from exc


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _param_checksum(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum() for p in model.parameters()))


def format_summary(summary: dict[str, Any]) -> str:
    """The one-line account of a finished run."""
    rate = summary.get("images_per_s")
    best = summary.get("best_miou")
    text = (f"{summary['iterations']} iterations, {summary['train_seconds']:.0f} s of training"
            f", {rate:.1f} images/s" if rate else f"{summary['iterations']} iterations")
    text += f", {summary['precision']}" if summary.get("precision") else ""
    if best is not None:
        text += f", best val mIoU {100 * best:.2f} % at iteration {summary['best_iteration']}"
    return text


class Trainer:
    """Owns the run: ``Trainer(cfg).fit()``.

    Args:
        cfg: the validated config.
        allow_config_change: resume even when the config alters the trajectory (recorded).
        skip_bad: train without unreadable samples instead of refusing the dataset.
    """

    def __init__(self, cfg: Config, allow_config_change: bool = False, skip_bad: bool = False):
        self.cfg = cfg
        self.out_dir = Path(cfg.train.out_dir)
        self.allow_config_change = allow_config_change
        self.skip_bad = skip_bad
        self._log_file: logging.Handler | None = None

    # ---- 1. set-up ------------------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.cfg
        self.dist = distributed.setup(cfg.train.device)
        self.device = self.dist.device
        torch.manual_seed(cfg.train.seed)
        self.amp_dtype = autocast_dtype(cfg.train.amp, self.device)
        if self.dist.is_main:
            # A file, an unwritable or uncreatable folder: one line naming the key, before work.
            check_output_dir(self.out_dir, "train.out_dir", ConfigError)
            # Temp files of a run killed while writing (last.pt, metrics.json): never complete.
            remove_stale_temps(self.out_dir)
            self._log_file = logging.FileHandler(self.out_dir / "train.log")
            self._log_file.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger().addHandler(self._log_file)
        warning = check_schedule(cfg.optim, cfg.train.max_iters)
        if warning and self.dist.is_main:
            log.warning(warning)
        log.info("training on %s in %s%s", self.device, precision_name(self.amp_dtype),
                 ", channels-last" if cfg.train.channels_last else "")

    # ---- 2. data --------------------------------------------------------------------------
    def _build_data(self) -> None:
        dc = self.cfg.data
        with _dataset_errors_named(dc.root, "data.train_split"):
            samples = build_train_dataset(self.cfg)
        train_set = samples.dataset
        _check_trainable(train_set, self.cfg, dc.train_split)
        self.val_dataset = None
        if self.cfg.train.eval_every > 0 and self.dist.is_main:
            with _dataset_errors_named(dc.root, "data.val_split"):
                self.val_dataset = build_dataset(dc.dataset, dc.root, dc.val_split)
            _check_trainable(self.val_dataset, self.cfg, dc.val_split)
        if dc.workers > 0:
            # The loader forks its workers after this process has decoded images (the check
            # below, evaluations). An OpenCV thread pool alive at fork time leaves each worker
            # waiting forever on threads it does not have (a hang in its first OpenCV call), so
            # this process, which decodes only for checks and evaluation, stays single-threaded.
            cv2.setNumThreads(1)
        # Every file is read once now, so a bad one stops the run before any work (or is
        # dropped with --skip-bad), never with a traceback at whichever batch draws it.
        self._check_split(train_set, dc.train_split)
        if self.val_dataset is not None:
            self._check_split(self.val_dataset, dc.val_split)
        self.loader, self.sampler = build_train_loader(
            self.cfg, samples, self.dist.rank, self.dist.world_size, self.device.type == "cuda")
        # Checkpoints record the classes of the data they were trained on.
        self.class_set = train_set.class_set.name

    def _check_split(self, dataset: Any, split: str) -> None:
        report = self.out_dir / f"dataset_check_{split}.json" if self.dist.is_main else None
        check_split(dataset, split, self.skip_bad, report, progress=self.dist.is_main)

    # ---- 3. model -------------------------------------------------------------------------
    def _build_model(self) -> None:
        mc = self.cfg.model
        model = build_model(mc.name, mc.num_classes, weights=mc.weights,
                            backbone_weights=mc.backbone_weights)
        if self.dist.enabled and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if self.cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        self.model = model
        self.criterion = SegLoss.from_config(self.cfg.loss).to(self.device)

    # ---- 4. optimiser and scaler ----------------------------------------------------------
    def _build_optimizer(self) -> None:
        self.optimizer = build_optimizer(_unwrap(self.model), self.cfg.optim)
        use_scaler = self.device.type == "cuda" and self.cfg.train.amp == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    # ---- 5. resume ------------------------------------------------------------------------
    def _check_resume(self) -> None:
        """Read last.pt (if any) and refuse it now, before the data and model cost time."""
        self.resume_state = None
        self.config_changes = []
        last = self.out_dir / "last.pt"
        if not last.is_file():
            return
        state = read_file(last)
        check_training_checkpoint(state, last)
        self.config_changes = check_resume(state["config"], self.cfg.to_dict(), last,
                                           self.allow_config_change)
        self.resume_state = state

    def _resume(self) -> None:
        self.start_iter = 0
        self.best_miou = -1.0
        self.best_iteration = None
        state, last = self.resume_state, self.out_dir / "last.pt"
        if state is None:
            if self.dist.is_main:
                dump_config(self.cfg, self.out_dir / "config.yaml")
                for history in ("losses.jsonl", "evaluations.jsonl"):
                    cut_history(self.out_dir / history, 0)  # a fresh run's logs start empty
            return
        _unwrap(self.model).load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.start_iter = int(state["iteration"])
        self.best_miou = float(state.get("best_miou", -1.0))
        self.best_iteration = state.get("best_iteration")
        self.resume_state = None  # the optimizer holds its own copy now
        if self.dist.is_main:
            record_changes(self.config_changes, self.start_iter,
                           self.out_dir / "config_changes.jsonl")
            if not (self.out_dir / "config.yaml").is_file():
                dump_config(self.cfg, self.out_dir / "config.yaml")
            for history in ("losses.jsonl", "evaluations.jsonl"):
                cut_history(self.out_dir / history, self.start_iter)
        log.info("resumed from %s at iteration %d", last, self.start_iter)

    def _card(self) -> dict[str, Any]:
        """Card fields every checkpoint of the run carries."""
        return {"eval_scale": self.cfg.data.eval_scale}

    def _save_last(self, iteration: int) -> None:
        if not self.dist.is_main:
            return
        ckpt = make_checkpoint(
            _unwrap(self.model), self.cfg.model.name, self.class_set,
            optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict(),
            iteration=iteration, best_miou=self.best_miou, best_iteration=self.best_iteration,
            torch_rng=torch.get_rng_state(), config=self.cfg.to_dict(), **self._card(),
        )
        atomic_save(ckpt, self.out_dir / "last.pt")

    # ---- evaluation -----------------------------------------------------------------------
    def _evaluate(self, iteration: int) -> dict[str, Any] | None:
        if self.val_dataset is None:
            return None
        from bisestdc_core.evaluation.evaluator import evaluate

        model = _unwrap(self.model)
        model.eval()
        metrics = evaluate(model, self.val_dataset, scale=self.cfg.data.eval_scale,
                           device=self.device, num_classes=self.cfg.model.num_classes,
                           limit=self.cfg.train.eval_max_images or None, progress=False)
        metrics.pop("confusion_matrix", None)
        model.train()
        miou = float(metrics["miou"])
        small = metrics.get("small_object_miou")
        self.writer.add_scalar("val/miou", miou, iteration)
        if small is not None:
            self.writer.add_scalar("val/small_object_miou", small, iteration)
        log.info("iteration %d: val mIoU %.2f %%%s", iteration, 100 * miou,
                 f", small objects {100 * small:.2f} %" if small is not None else "")
        if miou > self.best_miou:
            self.best_miou, self.best_iteration = miou, iteration
            metrics.update(iteration=iteration, checkpoint="best.pt", dataset=self.cfg.data.dataset,
                           split=self.cfg.data.val_split, model=self.cfg.model.name)
            atomic_save(make_checkpoint(model, self.cfg.model.name, self.class_set,
                                        iteration=iteration, val_metrics=metrics,
                                        **self._card()),
                        self.out_dir / "best.pt")
            atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2))
        with open(self.out_dir / "evaluations.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"iteration": iteration, "miou": miou, "small_object_miou": small,
                                "best_miou": self.best_miou,
                                "best_iteration": self.best_iteration}) + "\n")
        return metrics

    # ---- 6. loop --------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        try:
            return self._train()
        finally:
            # The run's train.log handler goes with the run: a later run in the same process
            # (a notebook, a test) must not write into this run's log.
            if self._log_file is not None:
                logging.getLogger().removeHandler(self._log_file)
                self._log_file.close()
                self._log_file = None

    def _train(self) -> dict[str, Any]:
        self._setup()
        self._check_resume()
        self._build_data()
        self._build_model()
        self._build_optimizer()
        self._resume()
        cfg, tc = self.cfg, self.cfg.train
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(self.out_dir / "tb") if self.dist.is_main else _NullWriter()
        history = open(self.out_dir / "losses.jsonl", "a") if self.dist.is_main else None
        model = self.model
        model.train()
        per_epoch = self.sampler.batches_per_epoch
        it = self.start_iter
        images_seen, train_seconds = 0, 0.0
        bar = tqdm(total=tc.max_iters, initial=it, desc="train", unit="it",
                   disable=not self.dist.is_main, dynamic_ncols=True)
        while it < tc.max_iters:
            self.sampler.set_position(it // per_epoch, it % per_epoch)
            t0 = time.perf_counter()
            for images, labels in self.loader:
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                if tc.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                lr = lr_at(it, cfg.optim, tc.max_iters)
                set_lr(self.optimizer, lr)
                values = train_step(model, self.criterion, self.optimizer, self.scaler,
                                    images, labels, self.amp_dtype, it)
                it += 1
                images_seen += images.shape[0] * self.dist.world_size
                bar.update(1)
                if history is not None:
                    # Wall-clock time per record: loss against time, and throughput after
                    # warm-up, come from the log alone.
                    history.write(json.dumps({"iteration": it, "lr": lr, **values,
                                              "time": round(time.time(), 3)}) + "\n")
                    history.flush()
                if self.dist.is_main and (it % tc.log_every == 0 or it == tc.max_iters):
                    bar.set_postfix(loss=f"{values['loss']:.3f}", lr=f"{lr:.2e}")
                    self.writer.add_scalar("train/lr", lr, it)
                    for k, v in values.items():
                        self.writer.add_scalar(f"train/{k}", v, it)
                    log.info("iteration %d/%d loss %.4f lr %.3e", it, tc.max_iters,
                             values["loss"], lr)
                # Evaluate before checkpointing: last.pt must carry this evaluation's best
                # mIoU, or a run killed right after a new best would resume believing the
                # older one and later replace best.pt with a worse network.
                if tc.eval_every and (it % tc.eval_every == 0 or it == tc.max_iters):
                    train_seconds += time.perf_counter() - t0
                    self._evaluate(it)
                    distributed.barrier(self.dist)
                    t0 = time.perf_counter()
                if it % tc.ckpt_every == 0 or it == tc.max_iters:
                    self._save_last(it)
                if it >= tc.max_iters:
                    break
            train_seconds += time.perf_counter() - t0
        bar.close()
        summary = self._finish(it, images_seen, train_seconds)
        if history is not None:
            history.close()
        self.writer.close()
        distributed.cleanup()
        return summary

    # ---- 7. finish ------------------------------------------------------------------------
    def _finish(self, it: int, images_seen: int, train_seconds: float) -> dict[str, Any]:
        checksum = torch.tensor([_param_checksum(_unwrap(self.model))], dtype=torch.float64)
        checksums = [checksum.clone() for _ in range(self.dist.world_size)]
        if self.dist.enabled:
            torch.distributed.all_gather(checksums, checksum)
        summary = {
            "iterations": it,
            "images_per_s": images_seen / train_seconds if train_seconds > 0 else None,
            "train_seconds": train_seconds,
            "best_miou": self.best_miou if self.best_miou >= 0 else None,
            "best_iteration": self.best_iteration,
            "precision": precision_name(self.amp_dtype),
            "channels_last": self.cfg.train.channels_last,
            "world_size": self.dist.world_size,
            "rank_param_checksums": [float(c) for c in checksums],
        }
        if self.dist.is_main:
            atomic_write_text(self.out_dir / "train_summary.json", json.dumps(summary, indent=2))
            from bisestdc_core.training.plots import plot_losses

            plot_losses(self.out_dir / "losses.jsonl", self.out_dir / "loss_curve.png")
        return summary


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass
