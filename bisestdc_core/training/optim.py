"""The seed's optimiser: SGD with four parameter groups, geometric warm-up, then poly decay."""

from __future__ import annotations

import torch
from torch import nn

from bisestdc_core.models.layers import FeatureFusionModule, SegHead
from bisestdc_core.training.config import OptimConfig


def is_head_module(module: nn.Module) -> bool:
    """Top-level FFM and heads train at ``head_lr_mult`` x lr, as in the seed's get_params."""
    return isinstance(module, (FeatureFusionModule, SegHead))


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """(backbone/context | FFM+heads) x (weights with decay | BN and biases without decay)."""
    groups = {(mult, decay): [] for mult in (False, True) for decay in (True, False)}
    for child in model.children():
        mult = is_head_module(child)
        for name, p in child.named_parameters():
            if not p.requires_grad:
                continue
            # Conv/linear weights decay; BN affine parameters and biases (all 1-D) do not.
            decay = p.ndim > 1 and not name.endswith(".bias")
            groups[(mult, decay)].append(p)
    out = []
    for (mult, decay), params in groups.items():
        if params:
            out.append({
                "params": params,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "lr_mult": cfg.head_lr_mult if mult else 1.0,
                "name": f"{'head' if mult else 'body'}_{'wd' if decay else 'nowd'}",
            })
    return out


# Warm-up never takes more than this share of a run, so every run, however short, spends
# most of its iterations decaying to the final lr (a run that warms up for all of its
# iterations would end at the peak lr with no decay at all).
MAX_WARMUP_SHARE = 0.5
FINAL_LR = 0.0  # poly decay ends here at max_iters


def warmup_iters(cfg: OptimConfig, max_iters: int) -> int:
    """Warm-up length for a run of ``max_iters``: the config's, at most MAX_WARMUP_SHARE."""
    return min(cfg.warmup_iters, int(max_iters * MAX_WARMUP_SHARE))


def check_schedule(cfg: OptimConfig, max_iters: int) -> str | None:
    """A warning (or None) when the config's warm-up does not fit the run as written."""
    warm = warmup_iters(cfg, max_iters)
    if warm < cfg.warmup_iters:
        return (f"'optim.warmup_iters' ({cfg.warmup_iters}) exceeds {MAX_WARMUP_SHARE:.0%} of "
                f"'train.max_iters' ({max_iters}): warming up over {warm} iterations instead, "
                f"then poly decay to {FINAL_LR:g} over the remaining {max_iters - warm}")
    return None


def lr_at(it: int, cfg: OptimConfig, max_iters: int) -> float:
    """Base learning rate at iteration ``it`` (0-based) of a run of ``max_iters``.

    Warm-up multiplies the lr geometrically from ``warmup_start_lr`` to ``lr`` over
    :func:`warmup_iters`; then poly decay (``power``) from ``lr`` to FINAL_LR at ``max_iters``.
    Both are defined relative to the run, so any ``max_iters`` ends at FINAL_LR.
    """
    warm = warmup_iters(cfg, max_iters)
    if it < warm:
        factor = (cfg.lr / cfg.warmup_start_lr) ** (1.0 / warm)
        return cfg.warmup_start_lr * factor**it
    progress = min(1.0, (it - warm) / (max_iters - warm))
    return FINAL_LR + (cfg.lr - FINAL_LR) * (1.0 - progress) ** cfg.power


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_mult", 1.0)
