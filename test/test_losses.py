"""Losses on hand-computable cases."""

import math

import numpy as np
import pytest
import torch

from bisestdc_core.losses import DetailAggregateLoss, OhemCELoss, SegLoss, dice_loss
from bisestdc_core.models import SegOutputs
from bisestdc_core.training.config import LossConfig


def confident_logits(labels: torch.Tensor, num_classes: int, p_true: torch.Tensor):
    """Logits whose softmax gives each pixel probability p_true for its label."""
    n, h, w = labels.shape
    rest = (1 - p_true) / (num_classes - 1)
    probs = rest.unsqueeze(1).expand(n, num_classes, h, w).clone()
    probs.scatter_(1, labels.clamp(max=num_classes - 1).unsqueeze(1), p_true.unsqueeze(1))
    return probs.log()


def test_ohem_keeps_all_hard_pixels_when_more_than_min():
    labels = torch.zeros(1, 8, 8, dtype=torch.long)  # 64 pixels, n_min = 4
    p = torch.full((1, 8, 8), 0.9)
    p[0, :2] = 0.5  # 16 hard pixels (p < 0.7)
    kept = OhemCELoss().kept_pixels(confident_logits(labels, 3, p), labels)
    assert kept.numel() == 16
    assert torch.allclose(kept, torch.full((16,), -math.log(0.5)), atol=1e-5)


def test_ohem_keeps_n_min_hardest_when_few_are_hard():
    labels = torch.zeros(2, 8, 8, dtype=torch.long)  # 128 pixels -> n_min = 8
    p = torch.full((2, 8, 8), 0.95)
    p[0, 0, :3] = 0.4  # 3 hard pixels only
    p[1, 0, :5] = 0.8  # next hardest five
    loss_fn = OhemCELoss()
    kept = loss_fn.kept_pixels(confident_logits(labels, 3, p), labels)
    assert kept.numel() == 8
    expected = (3 * -math.log(0.4) + 5 * -math.log(0.8)) / 8
    assert loss_fn(confident_logits(labels, 3, p), labels).item() == pytest.approx(expected, 1e-4)


def test_ohem_ignores_255():
    labels = torch.full((1, 4, 4), 255, dtype=torch.long)
    labels[0, 0, 0] = 1
    p = torch.full((1, 4, 4), 0.1)
    kept = OhemCELoss().kept_pixels(confident_logits(labels, 3, p), labels)
    assert kept.numel() == 1  # only the one labelled pixel is hard; ignored pixels have loss 0


def _naive_laplacian(gt: np.ndarray, stride: int) -> np.ndarray:
    padded = np.pad(gt.astype(np.float64), 1)
    h, w = gt.shape
    out = np.zeros(((h - 1) // stride + 1, (w - 1) // stride + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            win = padded[i * stride:i * stride + 3, j * stride:j * stride + 3]
            out[i, j] = 9 * win[1, 1] - win.sum()
    return np.clip(out, 0, None)


def test_detail_targets_of_two_region_map():
    # Left half class 0, right half class 1: the edge is the first column of the right half
    # (and, through the zero padding, the right region's image border).
    gt = np.zeros((8, 8), np.int64)
    gt[:, 4:] = 1
    targets = DetailAggregateLoss().detail_targets(torch.from_numpy(gt)[None])[0, 0].numpy()
    levels = []
    for s in (1, 2, 4):
        edge = (_naive_laplacian(gt, s) > 0.1).astype(float)
        levels.append(np.repeat(np.repeat(edge, s, 0), s, 1)[:8, :8])
    expected = (0.6 * levels[0] + 0.3 * levels[1] + 0.1 * levels[2]) > 0.1
    assert np.array_equal(targets.astype(bool), expected)
    assert targets[3, 4] == 1 and targets[3, 3] == 0 and targets[3, 0] == 0
    assert targets[3, 5] == 1  # the stride-2 edge, nearest-upsampled, covers two columns
    assert targets[3, 6] == 0  # stride-4 edges alone (weight 0.1) do not pass the threshold


def test_detail_targets_of_uniform_zero_map_are_empty():
    t = DetailAggregateLoss().detail_targets(torch.zeros(1, 16, 16, dtype=torch.long))
    assert t.sum() == 0


def test_detail_loss_is_low_for_perfect_logits_and_upsamples():
    loss_fn = DetailAggregateLoss()
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, 4:12, 4:12] = 2
    targets = loss_fn.detail_targets(labels)
    good = (targets * 2 - 1) * 20
    bce, dice = loss_fn(good, labels)
    assert bce.item() < 1e-6 and dice.item() < 1e-3
    bce_bad, dice_bad = loss_fn(-good, labels)
    assert bce_bad.item() > 10 and dice_bad.item() > 0.9
    low_res = torch.zeros(1, 1, 4, 4, requires_grad=True)
    bce4, dice4 = loss_fn(low_res, labels)
    (bce4 + dice4).backward()
    assert low_res.grad is not None and torch.isfinite(low_res.grad).all()


def test_dice_smooth_one():
    p = torch.tensor([[[[1.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0]]]])
    assert dice_loss(p, t).item() == pytest.approx(1 - (2 * 1 + 1) / (1 + 2 + 1))


def test_detail_fusion_kernel_is_a_constant_not_a_parameter():
    loss_fn = DetailAggregateLoss()
    assert list(loss_fn.parameters()) == []  # nothing for an optimiser to list
    assert loss_fn.fuse_kernel.flatten().tolist() == pytest.approx([0.6, 0.3, 0.1])
    assert loss_fn.state_dict() == {}  # constants, rebuilt on construction, never saved
    assert loss_fn.to(torch.float64).fuse_kernel.dtype == torch.float64  # follows .to()


def test_seg_loss_weights_main_aux_and_detail_as_configured():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 16, 16), generator=g)
    outputs = SegOutputs(
        main=torch.randn(2, 4, 16, 16, generator=g),
        aux=(torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)),
        detail=torch.randn(2, 1, 4, 4, generator=g),
    )
    ohem = OhemCELoss(0.7, 1 / 16)
    main = ohem(outputs.main, labels)
    aux = ohem(outputs.aux[0], labels) + ohem(outputs.aux[1], labels)
    bce, dice = DetailAggregateLoss()(outputs.detail, labels)
    for aux_weight, detail_weight in ((0.3, 1.0), (0.0, 2.5)):
        criterion = SegLoss.from_config(LossConfig(ohem_thresh=0.7, ohem_min_kept_ratio=1 / 16,
                                                   aux_weight=aux_weight,
                                                   detail_weight=detail_weight))
        total, parts = criterion(outputs, labels)
        expected = main + aux_weight * aux + detail_weight * (bce + dice)
        assert total.item() == pytest.approx(expected.item(), rel=1e-6)
        assert list(parts) == ["main", "aux", "detail_bce", "detail_dice"]
        assert [v.item() for v in parts.values()] == pytest.approx(
            [main.item(), aux.item(), bce.item(), dice.item()], rel=1e-6)


def test_class_weights_average_the_kept_pixels_by_their_class():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 3, (2, 8, 8))
    labels[0, 0] = 255
    plain = OhemCELoss(0.7, 1 / 16)
    # Equal weights change nothing: the weighted mean of equal weights is the plain mean.
    assert torch.allclose(OhemCELoss(0.7, 1 / 16, class_weights=[2.0, 2.0, 2.0])(logits, labels),
                          plain(logits, labels))
    # Weight only on class 0: the mean over the kept pixels of class 0 alone.
    kept_loss, kept = plain._kept(logits, labels)
    target = labels.flatten()[kept]
    expected = kept_loss[kept][target == 0].mean()
    weighted = OhemCELoss(0.7, 1 / 16, class_weights=[1.0, 0.0, 0.0])(logits, labels)
    assert torch.allclose(weighted, expected)
    # Rare classes weighted up raise the loss when they are the badly predicted ones.
    logits_bad_on_2 = torch.zeros(1, 3, 4, 4)
    logits_bad_on_2[0, 0] = 5.0  # everything predicted as class 0
    labels_2 = torch.zeros(1, 4, 4, dtype=torch.long)
    labels_2[0, 0, :2] = 2
    up = OhemCELoss(0.99, 1.0, class_weights=[1.0, 1.0, 10.0])(logits_bad_on_2, labels_2)
    assert up > OhemCELoss(0.99, 1.0)(logits_bad_on_2, labels_2)


def test_class_weights_must_match_the_class_count():
    loss = OhemCELoss(class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="2 values for 3 classes"):
        loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
