"""The seed's training augmentations on sample dicts (numpy / cv2), plus tensor conversion.

Every transform takes and returns the sample dict of ``bisestdc_core.data.datasets``
(``image`` H x W x 3 uint8 RGB, ``label`` H x W uint8 train ids or None). Images are resampled
bilinearly, labels with nearest neighbour so no new class ids appear. Random choices use a
``random.Random``: PyTorch's DataLoader reseeds Python's ``random`` in every worker (it does not
reseed NumPy's global generator), so workers do not repeat each other's augmentations.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from bisestdc_core.classes import IGNORE_INDEX
from bisestdc_core.image_tensors import images_to_tensor
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD

Sample = dict[str, Any]

SEED_SCALES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1.25, 1.375, 1.5)
"""The seed's random scales: {0.125, 0.25, ..., 1.5}."""
SEED_CROP = (512, 1024)  # (height, width): the seed's 1024x512 crops


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _resize(sample: Sample, size_hw: tuple[int, int]) -> Sample:
    h, w = size_hw
    out = dict(sample)
    out["image"] = cv2.resize(sample["image"], (w, h), interpolation=cv2.INTER_LINEAR)
    if sample.get("label") is not None:
        # INTER_NEAREST_EXACT samples at pixel centres like INTER_LINEAR does; plain
        # INTER_NEAREST is shifted by up to a pixel against the bilinear image.
        out["label"] = cv2.resize(sample["label"], (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return out


class RandomScale:
    """Resize image and label by a factor drawn from ``scales``.

    Args:
        scales: candidate factors (the seed: SEED_SCALES).
        rng: random source (default: the ``random`` module).
    """

    def __init__(self, scales: Sequence[float] = SEED_SCALES,
                 rng: random.Random | None = None) -> None:
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive, got {scales}")
        self.scales = tuple(float(s) for s in scales)
        self.rng = rng or random

    def __call__(self, sample: Sample) -> Sample:
        s = self.rng.choice(self.scales)
        h, w = sample["image"].shape[:2]
        return _resize(sample, (max(1, round(h * s)), max(1, round(w * s))))


class Resize:
    """Deterministic resize by ``scale`` (evaluation); optionally leave the label full size.

    Args:
        scale: resize factor.
        resize_label: also resize the label (nearest); False keeps it at the original size,
            as the evaluation protocol scores at label resolution.
    """

    def __init__(self, scale: float, resize_label: bool = False) -> None:
        self.scale = float(scale)
        self.resize_label = resize_label

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample["image"].shape[:2]
        size = (max(1, round(h * self.scale)), max(1, round(w * self.scale)))
        if self.resize_label:
            return _resize(sample, size)
        out = dict(sample)
        out["image"] = cv2.resize(sample["image"], size[::-1], interpolation=cv2.INTER_LINEAR)
        return out


class RandomCrop:
    """Random crop to ``size`` (H, W); smaller inputs are padded first (image 0, label ignore).

    With ``focus_classes`` and ``focus_prob`` > 0, that share of crops is centred on a random
    pixel of one of those classes (when the frame has any), so that thin, rare classes (poles,
    signs: about 1 % of CamVid's pixels each) appear in far more crops than uniform sampling
    gives them, without changing how often the frame itself is drawn.

    Args:
        size: (height, width) of the crop.
        rng: random source.
        focus_classes: train ids to centre crops on.
        focus_prob: probability of a class-centred crop.
    """

    def __init__(self, size: tuple[int, int] = SEED_CROP,
                 rng: random.Random | None = None,
                 focus_classes: Sequence[int] = (), focus_prob: float = 0.0) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.rng = rng or random
        self.focus_classes = np.asarray(sorted(set(int(c) for c in focus_classes)), np.uint8)
        self.focus_prob = float(focus_prob)

    def _origin(self, label: np.ndarray | None, h: int, w: int) -> tuple[int, int]:
        """Top-left corner: uniform, or around a pixel of a focus class."""
        ch, cw = self.size
        if label is not None and self.focus_classes.size and self.rng.random() < self.focus_prob:
            ys, xs = np.nonzero(np.isin(label, self.focus_classes))
            if ys.size:
                pick = self.rng.randrange(ys.size)
                # The pixel lands anywhere inside the crop, not always at its centre.
                y = int(ys[pick]) - self.rng.randint(0, ch - 1)
                x = int(xs[pick]) - self.rng.randint(0, cw - 1)
                return min(max(y, 0), h - ch), min(max(x, 0), w - cw)
        return self.rng.randint(0, h - ch), self.rng.randint(0, w - cw)

    def __call__(self, sample: Sample) -> Sample:
        ch, cw = self.size
        image, label = sample["image"], sample.get("label")
        h, w = image.shape[:2]
        if h < ch or w < cw:
            ph, pw = max(ch - h, 0), max(cw - w, 0)
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            if label is not None:
                label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT,
                                           value=IGNORE_INDEX)
            h, w = image.shape[:2]
        y, x = self._origin(label, h, w)
        out = dict(sample)
        out["image"] = np.ascontiguousarray(image[y:y + ch, x:x + cw])
        if label is not None:
            out["label"] = np.ascontiguousarray(label[y:y + ch, x:x + cw])
        return out


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, rng: random.Random | None = None) -> None:
        self.p = p
        self.rng = rng or random

    def __call__(self, sample: Sample) -> Sample:
        if self.rng.random() >= self.p:
            return sample
        out = dict(sample)
        out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
        if sample.get("label") is not None:
            out["label"] = np.ascontiguousarray(sample["label"][:, ::-1])
        return out


class ColorJitter:
    """Random brightness, contrast and saturation, each a factor in [1 - x, 1 + x], applied in a
    random order like torchvision's ColorJitter (the seed uses 0.5 for all three).

    Args:
        brightness, contrast, saturation: jitter strengths (0 disables one).
        rng: random source.
    """

    def __init__(self, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.strengths = {"brightness": brightness, "contrast": contrast,
                          "saturation": saturation}
        self.rng = rng or random

    def __call__(self, sample: Sample) -> Sample:
        img = sample["image"].astype(np.float32)
        ops = [k for k, v in self.strengths.items() if v > 0]
        self.rng.shuffle(ops)
        for op in ops:
            v = self.strengths[op]
            f = self.rng.uniform(max(0.0, 1.0 - v), 1.0 + v)
            if op == "brightness":
                img *= f
            elif op == "contrast":
                grey_mean = float(_grey(img).mean())
                img = (img - grey_mean) * f + grey_mean
            else:
                grey = _grey(img)[..., None]
                img = (img - grey) * f + grey
            np.clip(img, 0, 255, out=img)
        out = dict(sample)
        out["image"] = img.round().astype(np.uint8)
        return out


def _grey(img: np.ndarray) -> np.ndarray:
    """H x W luma (ITU-R 601, as torchvision) of an H x W x 3 RGB float image."""
    return img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114


class ToTensorNormalize:
    """Last step: image -> 3 x H x W float32 tensor normalised by mean/std (of [0, 1] RGB),
    label -> H x W int64 tensor (None stays None)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = tuple(mean)
        self.std = tuple(std)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        # The same normalisation the evaluator and the engines apply.
        out["image"] = images_to_tensor(sample["image"], self.mean, self.std)[0]
        if sample.get("label") is not None:
            out["label"] = torch.from_numpy(sample["label"].astype(np.int64))
        return out


def build_train_transforms(crop_size: tuple[int, int] = SEED_CROP,
                           scales: Sequence[float] = SEED_SCALES, jitter: float = 0.5,
                           flip: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                           std: Sequence[float] = IMAGENET_STD,
                           rng: random.Random | None = None,
                           focus_classes: Sequence[int] = (),
                           focus_prob: float = 0.0) -> Compose:
    """The seed's training pipeline: scale, crop, flip, colour jitter, normalise.

    Args:
        crop_size: (height, width) of the crops.
        scales: random scale factors.
        jitter: brightness/contrast/saturation strength (0 disables).
        flip: random horizontal flip.
        mean, std: normalisation of [0, 1] RGB.
        rng: random source shared by all random steps (default: the ``random`` module).
        focus_classes, focus_prob: class-centred crops (see ``RandomCrop``).
    """
    steps: list[Callable[[Sample], Sample]] = [
        RandomScale(scales, rng), RandomCrop(crop_size, rng, focus_classes, focus_prob)]
    if flip:
        steps.append(RandomHorizontalFlip(0.5, rng))
    if jitter > 0:
        steps.append(ColorJitter(jitter, jitter, jitter, rng))
    steps.append(ToTensorNormalize(mean, std))
    return Compose(steps)


def build_eval_transforms(scale: float = 1.0, mean: Sequence[float] = IMAGENET_MEAN,
                          std: Sequence[float] = IMAGENET_STD) -> Compose:
    """Evaluation pipeline: resize the image by ``scale`` (label kept at full size), normalise."""
    steps: list[Callable[[Sample], Sample]] = []
    if scale != 1.0:
        steps.append(Resize(scale, resize_label=False))
    steps.append(ToTensorNormalize(mean, std))
    return Compose(steps)
