"""What a resumed run may change, and putting its logs back to the checkpoint's iteration.

A run resumes from ``last.pt`` with the config it was started with. A new config that alters
the trajectory (model, data, augmentation, optimiser, schedule, loss, precision, seed) would
silently produce a run that matches neither config, so it is refused unless the caller allows
it explicitly; the change is then recorded. Keys that only say where or how often things are
written, or where the data lives, may change freely (and are recorded too).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bisestdc_core.artefacts import atomic_write_text
from bisestdc_core.training.config import ConfigError

log = logging.getLogger(__name__)

# Keys that do not change which batches are drawn or how the weights are updated.
TRAJECTORY_FREE = frozenset({
    "data.root", "data.workers", "data.val_split", "data.eval_scale",
    "train.out_dir", "train.log_every", "train.eval_every", "train.ckpt_every",
    "train.eval_max_images", "train.device",
})
# A checkpoint without these cannot continue a run.
TRAINING_KEYS = ("state_dict", "optimizer", "iteration", "torch_rng", "config")


@dataclass
class Change:
    key: str
    old: Any
    new: Any

    @property
    def alters_trajectory(self) -> bool:
        return self.key not in TRAJECTORY_FREE

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} -> {self.new!r}"


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, values in config.items()
            for key, value in (values or {}).items()}


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every ``section.key`` whose value differs between two ``Config.to_dict()`` dicts."""
    before, after = _flatten(old), _flatten(new)
    keys = sorted(set(before) | set(after))
    return [Change(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def check_training_checkpoint(state: Any, path: Path) -> None:
    """Raise ConfigError naming ``path`` unless it is a resumable training checkpoint."""
    missing = [k for k in TRAINING_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ConfigError(
            f"{path}: not a training checkpoint (no {', '.join(missing)}); a run resumes only "
            f"from the last.pt its own training wrote. Move the file away to start afresh, or "
            f"start from its weights with model.weights={path}")


def check_resume(saved: dict[str, Any], current: dict[str, Any], path: Path,
                 allow_change: bool) -> list[Change]:
    """Compare the checkpoint's config with the new one; refuse trajectory changes.

    Returns:
        All changes (trajectory-free ones, and the others when ``allow_change``).

    Raises:
        ConfigError naming the changed keys when one alters the trajectory and
        ``allow_change`` is False.
    """
    changes = config_changes(saved, current)
    altering = [c for c in changes if c.alters_trajectory]
    if altering and not allow_change:
        raise ConfigError(
            f"{path} was trained with a different config: {'; '.join(map(str, altering))}. "
            f"Resuming would follow neither config; restore those values, use a new "
            f"train.out_dir, or pass --allow-config-change to continue and record the change")
    return changes


def record_changes(changes: list[Change], iteration: int, path: Path) -> None:
    """Append the changes made at ``iteration`` to ``config_changes.jsonl``."""
    if not changes:
        return
    for change in changes:
        level = logging.WARNING if change.alters_trajectory else logging.INFO
        log.log(level, "config changed at resume (iteration %d): %s", iteration, change)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"iteration": iteration,
                            "changes": [{"key": c.key, "old": c.old, "new": c.new,
                                         "alters_trajectory": c.alters_trajectory}
                                        for c in changes]}) + "\n")


def cut_history(path: Path, iteration: int) -> None:
    """Keep only the records of ``path`` (JSON lines) at or before ``iteration``.

    A run killed after its last checkpoint logged iterations that the resumed run repeats;
    without the cut each of them would appear twice. Written atomically (temp file, rename).
    """
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line half-written when the run was killed: nothing after it is valid
        if record.get("iteration", 0) <= iteration:
            kept.append(line)
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
