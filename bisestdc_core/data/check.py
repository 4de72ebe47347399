"""Check a dataset before training: every listed image and label opens and they match in size.

A file that cannot be read would otherwise stop a run with a traceback iterations (or hours)
in, at whichever batch first draws it. ``check_samples`` reads every pair once through the
dataset's own loader (the same decoding, size and class-id checks training uses) and returns
the bad ones with the reason; the caller refuses to train or, when asked, drops them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

_SHOW = 3  # bad files named in a one-line error; the report lists them all


class DatasetCheckError(ValueError):
    """A dataset with files that cannot be trained on."""


@dataclass
class BadSample:
    name: str
    image: str
    label: str | None
    reason: str


def check_samples(dataset: Any, desc: str = "check", progress: bool = True) -> list[BadSample]:
    """Load every sample of ``dataset`` once (untransformed) and collect those that fail.

    Args:
        dataset: a ``SegmentationDataset`` (``items`` and ``load``).
        desc: tqdm label.
        progress: show a tqdm bar.

    Returns:
        One :class:`BadSample` per unreadable, mismatched or mislabelled pair.
    """
    bad = []
    for index in tqdm(range(len(dataset)), desc=desc, unit="img", disable=not progress,
                      leave=False):
        name, image_path, label_path = dataset.items[index]
        try:
            dataset.load(index)
        except (OSError, ValueError) as exc:
            bad.append(BadSample(name, str(image_path),
                                 None if label_path is None else str(label_path), str(exc)))
    return bad


def write_report(bad: list[BadSample], path: Path, split: str, total: int) -> None:
    """The bad samples of one split as JSON (``{"split", "total", "bad": [...]}``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"split": split, "total": total,
                                "bad": [asdict(b) for b in bad]}, indent=2))


def drop_samples(dataset: Any, bad: list[BadSample]) -> None:
    """Remove ``bad`` from ``dataset.items`` (the order of the others is kept)."""
    names = {b.name for b in bad}
    dataset.items = [item for item in dataset.items if item[0] not in names]


def check_split(dataset: Any, split: str, skip_bad: bool, report: Path | None,
                progress: bool = True) -> list[BadSample]:
    """Check one split; refuse it (``DatasetCheckError``) or drop its bad samples.

    Args:
        dataset: the split's dataset.
        split: its name, for messages.
        skip_bad: drop bad samples (logged) instead of refusing.
        report: where to write the JSON report when there are bad samples (or None).
        progress: show a tqdm bar.

    Returns:
        The bad samples (already removed from ``dataset`` when ``skip_bad``).
    """
    total = len(dataset)
    bad = check_samples(dataset, desc=f"check {split}", progress=progress)
    if not bad:
        log.info("dataset check: split '%s', %d image/label pairs, all readable", split, total)
        return bad
    if report is not None:
        write_report(bad, report, split, total)
    where = f" (all listed in {report})" if report is not None else ""
    named = "; ".join(f"{b.name}: {b.reason}" for b in bad[:_SHOW])
    if not skip_bad:
        raise DatasetCheckError(
            f"split '{split}': {len(bad)} of {total} samples cannot be used{where}: {named}"
            f"{' ...' if len(bad) > _SHOW else ''} (--skip-bad trains without them)")
    if len(bad) == total:
        raise DatasetCheckError(f"split '{split}': none of the {total} samples can be used"
                                f"{where}: {named}")
    drop_samples(dataset, bad)
    log.warning("dataset check: split '%s': skipping %d of %d samples%s: %s", split, len(bad),
                total, where, named)
    return bad
