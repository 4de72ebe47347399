"""Augmentations keep image and label aligned; tensor conversion and the seed pipelines."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch

from bisestdc_core.classes import CITYSCAPES, IGNORE_INDEX
from bisestdc_core.data.transforms import (
    SEED_SCALES,
    ColorJitter,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    ToTensorNormalize,
    build_eval_transforms,
    build_train_transforms,
)
from bisestdc_core.normalization import IMAGENET_MEAN

PALETTE = CITYSCAPES.palette_rgb()[:19].astype(np.int32)


def colour_coded_sample(h: int = 96, w: int = 128, seed: int = 0) -> dict:
    """Blocks of random classes; the image is each class's palette colour."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 19, (max(1, h // 16), max(1, w // 16))).astype(np.uint8)
    label = cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST)
    image = CITYSCAPES.palette_rgb()[label]
    return {"image": image, "label": label, "name": "x", "image_path": "x.png"}


def decode(image: np.ndarray) -> np.ndarray:
    """Nearest palette colour per pixel -> class id."""
    d = ((image[..., None, :].astype(np.int32) - PALETTE) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)


def interior(label: np.ndarray) -> np.ndarray:
    """Pixels whose 5x5 neighbourhood has one class (away from resampled borders); the frame
    is excluded because a class border may lie just outside the crop."""
    k = np.ones((5, 5), np.uint8)
    inside = cv2.erode(label, k) == cv2.dilate(label, k)
    inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False
    return inside


@pytest.mark.parametrize("scale", [0.5, 0.75, 1.25, 1.5])
def test_scale_crop_flip_keep_alignment(scale):
    rng = random.Random(1)
    t = Compose([RandomScale([scale], rng), RandomCrop((80, 112), rng),
                 RandomHorizontalFlip(1.0, rng)])
    out = t(colour_coded_sample())
    img, lab = out["image"], out["label"]
    assert img.shape == (80, 112, 3) and lab.shape == (80, 112)
    assert img.dtype == np.uint8 and lab.dtype == np.uint8
    valid = lab != IGNORE_INDEX
    check = valid & interior(lab)
    assert check.sum() > 0.2 * valid.sum() > 0
    np.testing.assert_array_equal(decode(img)[check], lab[check])
    # Nearest-neighbour labels: no new ids appear.
    assert set(np.unique(lab[valid]).tolist()) <= set(range(19))


def test_small_image_is_padded_with_ignore():
    sample = colour_coded_sample(40, 48)
    out = RandomCrop((64, 80), random.Random(0))(sample)
    assert out["image"].shape == (64, 80, 3)
    np.testing.assert_array_equal(out["image"][:40, :48], sample["image"])
    np.testing.assert_array_equal(out["label"][:40, :48], sample["label"])
    assert (out["label"][40:] == IGNORE_INDEX).all()
    assert (out["label"][:, 48:] == IGNORE_INDEX).all()
    assert (out["image"][40:] == 0).all() and (out["image"][:, 48:] == 0).all()


def test_flip_is_exact():
    sample = colour_coded_sample()
    out = RandomHorizontalFlip(1.0)(sample)
    np.testing.assert_array_equal(out["image"], sample["image"][:, ::-1])
    np.testing.assert_array_equal(out["label"], sample["label"][:, ::-1])
    assert RandomHorizontalFlip(0.0)(sample) is sample


def test_random_scale_uses_listed_scales():
    assert SEED_SCALES == tuple(0.125 * k for k in range(1, 13))
    rng = random.Random(0)
    sizes = {RandomScale((0.5, 1.0), rng)(colour_coded_sample())["image"].shape[:2]
             for _ in range(20)}
    assert sizes == {(48, 64), (96, 128)}
    with pytest.raises(ValueError):
        RandomScale([0.0])


def test_resize_keeps_full_size_label_for_eval():
    sample = colour_coded_sample()
    out = Resize(0.5)(sample)
    assert out["image"].shape == (48, 64, 3) and out["label"].shape == (96, 128)
    both = Resize(0.5, resize_label=True)(sample)
    assert both["label"].shape == (48, 64)


def test_color_jitter_changes_image_only():
    sample = colour_coded_sample()
    out = ColorJitter(0.5, 0.5, 0.5, rng=random.Random(3))(sample)
    assert out["image"].dtype == np.uint8 and out["image"].shape == sample["image"].shape
    assert not np.array_equal(out["image"], sample["image"])
    assert out["label"] is sample["label"]
    same = ColorJitter(0.0, 0.0, 0.0)(sample)
    np.testing.assert_array_equal(same["image"], sample["image"])
    # Saturation 0 gives grey.
    grey = ColorJitter(0, 0, 1.0, rng=random.Random(0))
    grey.rng = type("R", (), {"shuffle": lambda self, x: None,
                              "uniform": lambda self, a, b: 0.0})()
    g = grey(sample)["image"].astype(int)
    assert np.abs(g[..., 0] - g[..., 1]).max() <= 1


def test_to_tensor_normalize():
    sample = colour_coded_sample()
    sample["image"][:] = (np.asarray(IMAGENET_MEAN) * 255).round().astype(np.uint8)
    out = ToTensorNormalize()(sample)
    assert out["image"].shape == (3, 96, 128) and out["image"].dtype == torch.float32
    assert out["image"].abs().max() < 0.02
    assert out["label"].dtype == torch.int64 and out["label"].shape == (96, 128)
    unlabeled = ToTensorNormalize()({**sample, "label": None})
    assert unlabeled["label"] is None


def test_pipelines():
    train = build_train_transforms((64, 96), scales=(0.25, 1.5), jitter=0.5, rng=random.Random(0))
    for _ in range(4):
        out = train(colour_coded_sample())
        assert out["image"].shape == (3, 64, 96) and out["label"].shape == (64, 96)
    ev = build_eval_transforms(0.5)(colour_coded_sample())
    assert ev["image"].shape == (3, 48, 64) and ev["label"].shape == (96, 128)
    assert build_eval_transforms(1.0)(colour_coded_sample())["image"].shape == (3, 96, 128)


def _frame_with_one_pole(h: int = 360, w: int = 480) -> dict:
    """A frame of class 1 with a 3-pixel-wide vertical strip of class 2 (a pole) at one side."""
    label = np.ones((h, w), np.uint8)
    label[100:300, 440:443] = 2
    image = np.repeat(label[..., None] * 60, 3, axis=2).astype(np.uint8)
    return {"image": image, "label": label}


def test_focus_crops_contain_the_focus_class_far_more_often():
    sample = _frame_with_one_pole()
    rng = random.Random(0)
    uniform = RandomCrop((64, 80), rng)
    focused = RandomCrop((64, 80), rng, focus_classes=[2], focus_prob=1.0)
    hits_uniform = sum(bool((uniform(sample)["label"] == 2).any()) for _ in range(200))
    hits_focused = sum(bool((focused(sample)["label"] == 2).any()) for _ in range(200))
    assert hits_focused == 200  # every class-centred crop holds a pixel of the class
    assert hits_uniform < 60  # ~4 % of uniform crops do (a 3 x 200 strip in 360 x 480)


def test_focus_crops_keep_image_and_label_aligned_and_fall_back_without_the_class():
    sample = _frame_with_one_pole()
    crop = RandomCrop((64, 80), random.Random(1), focus_classes=[2, 6], focus_prob=1.0)
    out = crop(sample)
    np.testing.assert_array_equal(out["image"][..., 0], out["label"] * 60)
    # No pixel of class 9 anywhere: a uniform crop, not an error.
    absent = RandomCrop((64, 80), random.Random(1), focus_classes=[9], focus_prob=1.0)
    assert absent(sample)["label"].shape == (64, 80)
