"""The seed's optimiser: SGD with four parameter groups, geometric warm-up, then poly decay."""

from __future__ import annotations

import torch
from torch import nn

from bisestdc_core.models.layers import FeatureFusionModule, SegHead

from .config import OptimConfig


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


def lr_at(it: int, cfg: OptimConfig, max_iters: int) -> float:
    """Base learning rate at iteration ``it`` (0-based).

    Warm-up multiplies the lr geometrically from ``warmup_start_lr`` to ``lr`` over
    ``warmup_iters``; then poly decay (power 0.9) to 0 at ``max_iters``.
    """
    warm = min(cfg.warmup_iters, max_iters - 1)
    if it < warm:
        factor = (cfg.lr / cfg.warmup_start_lr) ** (1.0 / warm)
        return cfg.warmup_start_lr * factor**it
    progress = (it - warm) / max(1, max_iters - warm)
    return cfg.lr * (1.0 - progress) ** cfg.power


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * g.get("lr_mult", 1.0)
