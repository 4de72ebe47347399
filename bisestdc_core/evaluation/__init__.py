"""Metrics (confusion matrix, IoU), the evaluation protocol and evaluation plots."""

from bisestdc_core.evaluation.metrics import (
    ConfusionMatrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
)

__all__ = ["ConfusionMatrix", "iou_per_class", "mean_iou", "pixel_accuracy"]
