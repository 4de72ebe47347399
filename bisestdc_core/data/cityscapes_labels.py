"""Cityscapes labelId <-> trainId conversion tables.

The official label files (``*_gtFine_labelIds.png``) hold *label ids* 0..33; networks are trained
on the 19 *train ids* (everything else -> IGNORE_INDEX). The table comes from cityscapesscripts'
``labels`` when it is installed, and from a verbatim copy of that table otherwise, so that the
runtime (ROS node, export) does not need cityscapesscripts.
"""

from __future__ import annotations

import numpy as np

from bisestdc_core.classes import IGNORE_INDEX

# (labelId, trainId) pairs of cityscapesscripts.helpers.labels (license plate, id -1, left out:
# it never appears in label files).
_FALLBACK_TABLE: tuple[tuple[int, int], ...] = (
    (0, 255), (1, 255), (2, 255), (3, 255), (4, 255), (5, 255), (6, 255), (7, 0), (8, 1),
    (9, 255), (10, 255), (11, 2), (12, 3), (13, 4), (14, 255), (15, 255), (16, 255), (17, 5),
    (18, 255), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12), (26, 13),
    (27, 14), (28, 15), (29, 255), (30, 255), (31, 16), (32, 17), (33, 18),
)

# Label id written for pixels predicted / rendered as ignore ("unlabeled").
UNLABELED_LABEL_ID = 0


def _official_table() -> tuple[tuple[int, int], ...]:
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError:
        return _FALLBACK_TABLE
    pairs = []
    for label in labels:
        if label.id < 0:
            continue
        train_id = label.trainId if 0 <= label.trainId < IGNORE_INDEX else IGNORE_INDEX
        pairs.append((label.id, train_id))
    return tuple(pairs)


def _build_luts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = _official_table()
    label_to_train = np.full(256, IGNORE_INDEX, np.uint8)
    known = np.zeros(256, bool)
    train_to_label = np.full(256, UNLABELED_LABEL_ID, np.uint8)
    for label_id, train_id in table:
        label_to_train[label_id] = train_id
        known[label_id] = True
        if train_id != IGNORE_INDEX:
            train_to_label[train_id] = label_id
    return label_to_train, known, train_to_label


LABEL_ID_TO_TRAIN_ID, KNOWN_LABEL_IDS, TRAIN_ID_TO_LABEL_ID = _build_luts()
"""256-entry uint8 LUTs: labelId -> trainId (255 for non-evaluated ids), bool "is a defined
labelId", and trainId -> labelId (255 / unknown -> 0 "unlabeled")."""


def label_ids_to_train_ids(label_ids: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Map a Cityscapes labelId map to train ids.

    Args:
        label_ids: H x W uint8 labelIds.
        source: file name used in the error message.

    Returns:
        H x W uint8 train ids (IGNORE_INDEX for ids that are not evaluated).

    Raises:
        ValueError: the map holds an id that is not a Cityscapes label id.
    """
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        if label_ids.size and (label_ids.min() < 0 or label_ids.max() > 255):
            raise ValueError(f"label ids outside 0..255: {source}")
        label_ids = label_ids.astype(np.uint8)
    present = np.flatnonzero(np.bincount(label_ids.ravel(), minlength=256))
    unknown = present[~KNOWN_LABEL_IDS[present]]
    if unknown.size:
        raise ValueError(f"unknown Cityscapes label id(s) {unknown.tolist()}: {source}")
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train ids (H x W uint8) to Cityscapes labelIds for the official evaluation/export."""
    return TRAIN_ID_TO_LABEL_ID[np.asarray(train_ids, np.uint8)]
