"""Run a network over a dataset with the seed's evaluation protocol and score it.

Protocol (seed, single scale): resize the normalised input by ``scale`` (bilinear,
align_corners=True), run the network, upsample the logits bilinearly (align_corners=True) to the
label size, argmax. Options: horizontal flip and several scales, combined by averaging softmax
probabilities. Metrics come from one confusion matrix over all labelled pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bisestdc_core.classes import ClassSet
from bisestdc_core.data.cityscapes_labels import train_ids_to_label_ids
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_core.image_tensors import images_to_tensor
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

SEED_EVAL_SCALE = 0.5  # "Seg50"


def card_eval_scale(meta: dict[str, Any], image_height: int | None = None
                    ) -> tuple[float, str]:
    """The single-scale factor a checkpoint was meant to be evaluated at, and where it is from.

    A network trained on full-scale crops scores far lower at the seed's 0.5, so the default
    follows the checkpoint's card: its ``eval_scale`` (what the trainer validated it with);
    for older files the scale of its recorded val metrics or config; for packaged files with
    only a ``network_size``, the scale that brings ``image_height`` to that size; else the
    seed's 0.5.

    Args:
        meta: the checkpoint's metadata (``load_checkpoint_model``'s second value).
        image_height: height of the dataset's images, for the ``network_size`` rule.

    Returns:
        ``(scale, source)``, source naming the card field used.
    """
    if meta.get("eval_scale"):
        return float(meta["eval_scale"]), "checkpoint card 'eval_scale'"
    scales = (meta.get("val_metrics") or {}).get("protocol", {}).get("scales") or []
    if len(scales) == 1:
        return float(scales[0]), "checkpoint card 'val_metrics.protocol.scales'"
    configured = ((meta.get("config") or {}).get("data") or {}).get("eval_scale")
    if configured:
        return float(configured), "checkpoint card 'config.data.eval_scale'"
    size = meta.get("network_size")
    if size and image_height:
        return float(size[0]) / image_height, (
            f"checkpoint card 'network_size' {size[0]}x{size[1]} over {image_height}-pixel-high "
            f"images")
    return SEED_EVAL_SCALE, "the seed's Seg50 protocol (the checkpoint card has no scale)"


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    # Models in eval mode return logits; accept a (main, aux...) tuple from other networks too.
    if isinstance(out, list | tuple):
        out = out[0]
    return out


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, scales: Sequence[float] = (SEED_EVAL_SCALE,),
            flip: bool = False, out_size: tuple[int, int] | None = None,
            num_classes: int | None = None) -> torch.Tensor:
    """Class map for a normalised batch with the evaluation protocol.

    Args:
        model: network in eval mode returning N x C x h x w logits.
        x: N x 3 x H x W normalised input (on the model's device).
        scales: input resize factors; more than one (or ``flip``) averages softmax probabilities.
        flip: also run the mirrored input.
        out_size: (H, W) of the output (default: the input size).
        num_classes: if given, the number of logit channels the model must produce.

    Returns:
        N x H x W int64 train ids.
    """
    size = tuple(out_size) if out_size is not None else tuple(x.shape[-2:])
    h, w = x.shape[-2:]
    views = [False, True] if flip else [False]
    average = len(scales) > 1 or flip
    acc = None
    for s in scales:
        xs = x
        if s != 1.0:
            xs = F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))),
                               mode="bilinear", align_corners=True)
        for mirrored in views:
            logits = _logits(model, xs.flip(-1) if mirrored else xs)
            if num_classes is not None and logits.shape[1] != num_classes:
                raise ValueError(
                    f"model outputs {logits.shape[1]} channels, expected {num_classes} classes")
            if mirrored:
                logits = logits.flip(-1)
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=True)
            # Single view: argmax of the logits (same as of the softmax, cheaper).
            score = logits.softmax(1) if average else logits
            acc = score if acc is None else acc + score
    return acc.argmax(1)


def evaluate(
    model: nn.Module,
    dataset: Any,
    scale: float = SEED_EVAL_SCALE,
    flip: bool = False,
    scales: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
    class_set: ClassSet | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    prediction_dir: str | Path | None = None,
    save_label_ids: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` (samples as in ``bisestdc_core.data.datasets``).

    Args:
        model: network returning N x C x H x W logits in eval mode.
        dataset: untransformed samples (uint8 image, train-id label or None); has ``class_set``.
        scale: single-scale protocol factor (0.5 = the seed's "Seg50").
        flip: add the mirrored input.
        scales: multi-scale factors (overrides ``scale``); softmax probabilities are averaged.
        device: where to run the model.
        num_classes: classes of the model output (default: the class set's).
        class_set: names for the metrics (default ``dataset.class_set``).
        mean, std: input normalisation ([0, 1] RGB), as the model was trained.
        prediction_dir: if set, write one PNG per image there.
        save_label_ids: write Cityscapes labelIds (``{name}_labelIds.png``, what
            cityscapesscripts' evaluation reads) instead of train ids (``{name}.png``).
        limit: only the first ``limit`` images.
        progress: tqdm progress bar.

    Returns:
        ``ConfusionMatrix.summary`` plus ``num_images`` (labelled images scored),
        ``num_predicted``, ``protocol`` and ``confusion_matrix`` (C x C list, rows = truth).
    """
    class_set = class_set or dataset.class_set
    num_classes = int(num_classes or class_set.num_classes)
    if num_classes != class_set.num_classes:
        raise ValueError(
            f"model predicts {num_classes} classes, class set {class_set.name} has "
            f"{class_set.num_classes}")
    scale_list = [float(s) for s in scales] if scales else [float(scale)]
    device = torch.device(device)
    model = model.to(device).eval()
    cm = ConfusionMatrix(num_classes)
    out_dir = Path(prediction_dir) if prediction_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="evaluate", unit="img")
    n_labelled = 0
    for i in indices:
        sample = dataset[i]
        image = sample["image"]
        x = images_to_tensor(image, mean, std).to(device)
        pred = predict(model, x, scale_list, flip, out_size=image.shape[:2],
                       num_classes=num_classes)[0]
        pred_np = pred.to(torch.uint8).cpu().numpy()
        if sample.get("label") is not None:
            cm.update(pred_np, sample["label"])
            n_labelled += 1
        if out_dir is not None:
            _write_prediction(out_dir, sample["name"], pred_np, save_label_ids)
    result = cm.summary(class_set)
    result.update(
        num_images=n_labelled,
        num_predicted=n,
        class_set=class_set.name,
        protocol={
            "scales": scale_list,
            "flip": bool(flip),
            "input_resize": "bilinear, align_corners=True",
            "logit_upsample": "bilinear, align_corners=True, to label size",
            "fusion": "mean softmax" if (len(scale_list) > 1 or flip) else "argmax of logits",
            "ignore_index": cm.ignore_index,
            "miou_over": "classes with ground truth or prediction (NaN classes excluded)",
        },
        confusion_matrix=cm.matrix.tolist(),
    )
    if n_labelled == 0:
        logger.warning("no labelled images: metrics are empty")
    return result


def _write_prediction(out_dir: Path, name: str, pred: np.ndarray, label_ids: bool) -> None:
    if label_ids:
        path = out_dir / f"{name}_labelIds.png"
        data = train_ids_to_label_ids(pred)
    else:
        path = out_dir / f"{name}.png"
        data = pred
    if not cv2.imwrite(str(path), data):
        raise OSError(f"cannot write prediction {path}")
