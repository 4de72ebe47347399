"""Confusion matrix and the IoU metrics derived from it.

Rows are ground truth, columns predictions, both in train ids. Pixels whose ground truth is the
ignore index are not counted (as cityscapesscripts does); a class with no ground truth and no
prediction has IoU NaN and is left out of the mean.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bisestdc_core.classes import IGNORE_INDEX, ClassSet


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes confusion matrix with ``np.bincount``.

    Args:
        num_classes: number of train ids.
        ignore_index: ground-truth value that is not scored.

    Attributes:
        matrix: C x C int64, ``matrix[gt, pred]`` = pixel count.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, pred: Any, gt: Any) -> None:
        """Add one prediction / ground-truth pair (same shape, any dims; numpy or CPU tensors).

        Raises:
            ValueError: shapes differ, or a ground truth / prediction id is out of range.
        """
        pred_arr, gt_arr = np.asarray(pred), np.asarray(gt)
        if pred_arr.shape != gt_arr.shape:
            raise ValueError(f"prediction shape {pred_arr.shape} != ground truth {gt_arr.shape}")
        # Mask and range-check in the maps' own (narrow) dtype and widen only the scored
        # pixels, at the end: full-size int64 copies cost more than the counting itself.
        gt, pred = gt_arr.ravel(), pred_arr.ravel()
        valid = gt != self.ignore_index
        gt, pred = gt[valid], pred[valid]
        n = self.num_classes
        if gt.size and (gt.min() < 0 or gt.max() >= n):
            raise ValueError(
                f"ground truth ids outside 0..{n - 1} (and ignore {self.ignore_index})")
        if pred.size and (pred.min() < 0 or pred.max() >= n):
            raise ValueError(f"predicted ids outside 0..{n - 1}")
        index = gt.astype(np.int64)
        index *= n
        index += pred
        self.matrix += np.bincount(index, minlength=n * n).reshape(n, n)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
        return self

    def iou(self) -> np.ndarray:
        """C float64 IoU per class; NaN where a class has neither ground truth nor prediction."""
        return iou_per_class(self.matrix)

    def miou(self) -> float:
        return mean_iou(self.iou())

    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)

    def summary(self, class_set: ClassSet) -> dict[str, Any]:
        """Metrics as a JSON-ready dict (NaN -> None): miou, iou by class name, small-object IoU
        by name and their mean, pixel accuracy, counted pixels."""
        if class_set.num_classes != self.num_classes:
            raise ValueError(
                f"class set {class_set.name} has {class_set.num_classes} classes, matrix has "
                f"{self.num_classes}")
        ious = self.iou()
        small = {class_set.names[i]: ious[i] for i in class_set.small_object_ids}
        small_values = np.array(list(small.values()), np.float64)
        return {
            "miou": _nan_to_none(mean_iou(ious)),
            "iou": {name: _nan_to_none(v) for name, v in zip(class_set.names, ious)},
            "small_object_iou": {k: _nan_to_none(v) for k, v in small.items()},
            "small_object_miou": _nan_to_none(mean_iou(small_values)),
            "pixel_accuracy": _nan_to_none(self.pixel_accuracy()),
            "num_pixels": int(self.matrix.sum()),
        }


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class of a C x C (gt, pred) matrix; NaN if 0 / 0."""
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    denom = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def mean_iou(ious: np.ndarray) -> float:
    """Mean over the non-NaN entries (NaN if there are none)."""
    ious = np.asarray(ious, np.float64)
    valid = ~np.isnan(ious)
    return float(ious[valid].mean()) if valid.any() else math.nan


def pixel_accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else math.nan


def _nan_to_none(v: float) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v
