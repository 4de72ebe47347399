"""Metrics on hand-computable matrices, agreement with cityscapesscripts, evaluate() and the CLI."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from bisestdc_core.classes import CITYSCAPES, IGNORE_INDEX
from bisestdc_core.data.cityscapes_labels import label_ids_to_train_ids, train_ids_to_label_ids
from bisestdc_core.data.datasets import CityscapesDataset, ImageFolderDataset
from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.evaluation.evaluator import evaluate
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD

# ----------------------------------------------------------------------------- metrics


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix(3)
    gt = np.array([[0, 0, 1, 1, IGNORE_INDEX]], np.uint8)
    pred = np.array([[0, 1, 1, 1, 2]], np.uint8)
    cm.update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 2)  # tp 1, fn 1, fp 0
    assert iou[1] == pytest.approx(2 / 3)  # tp 2, fn 0, fp 1
    assert math.isnan(iou[2])  # no ground truth, no (counted) prediction: excluded
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.pixel_accuracy() == pytest.approx(3 / 4)
    # A prediction of a class without ground truth makes its IoU 0, not NaN.
    cm.update(np.array([2]), np.array([0]))
    assert cm.iou()[2] == 0.0
    other = ConfusionMatrix(3)
    other.update(torch.tensor([1]), torch.tensor([1]))
    cm += other
    assert cm.matrix[1, 1] == 3


def test_confusion_matrix_rejects_bad_input():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ground truth"):
        cm.update(np.zeros(1), np.array([5]))
    with pytest.raises(ValueError, match="predicted"):
        cm.update(np.array([2]), np.zeros(1))


def test_summary_names_and_small_objects():
    cm = ConfusionMatrix(19)
    gt = np.array([5, 5, 6, 7, 0])
    pred = np.array([5, 0, 6, 0, 0])
    cm.update(pred, gt)
    s = cm.summary(CITYSCAPES)
    assert s["iou"]["pole"] == pytest.approx(0.5)
    assert s["iou"]["traffic light"] == 1.0 and s["iou"]["traffic sign"] == 0.0
    assert s["iou"]["road"] == pytest.approx(1 / 3)
    assert s["iou"]["sky"] is None
    assert s["small_object_iou"] == {"pole": 0.5, "traffic light": 1.0, "traffic sign": 0.0}
    assert s["small_object_miou"] == pytest.approx(0.5)
    assert s["miou"] == pytest.approx((0.5 + 1 + 0 + 1 / 3) / 4)
    json.dumps(s)  # JSON-ready


# ----------------------------------------------------------------------------- official tool


def _cityscapes_fixture(root: Path, n: int = 3) -> list[Path]:
    """Synthetic scenes in the official layout, with non-evaluated label ids added to the GT."""
    write_dataset(root, n, split="val", height=64, width=128, seed=11)
    gts = sorted((root / "gtFine/val").glob("*/*_gtFine_labelIds.png"))
    for i, gt in enumerate(gts):
        lab = cv2.imread(str(gt), cv2.IMREAD_UNCHANGED)
        lab[-6:] = 1  # ego vehicle
        lab[:4, :10] = 0  # unlabeled
        lab[20:24, 40 + i:60] = 9  # parking (not evaluated)
        lab[30:33, 5:9] = 4  # static
        cv2.imwrite(str(gt), lab)
    return gts


def _official(root: Path, results: Path, gts: list[Path], monkeypatch) -> dict:
    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(results))
    mod = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    mod = importlib.reload(mod)  # its module-level args read the environment
    args = mod.args
    args.quiet = True
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.predictionPath = str(results)
    args.predictionWalk = None
    preds = [mod.getPrediction(args, str(gt)) for gt in gts]
    return mod.evaluateImgLists(preds, [str(g) for g in gts], args)


def test_miou_matches_cityscapesscripts(tmp_path, monkeypatch):
    root, results = tmp_path / "cs", tmp_path / "results"
    gts = _cityscapes_fixture(root)
    results.mkdir()
    rng = np.random.default_rng(0)
    ours = ConfusionMatrix(19)
    for gt_path in gts:
        gt_train = label_ids_to_train_ids(cv2.imread(str(gt_path), cv2.IMREAD_UNCHANGED))
        # Perturb: drop a tenth of the pixels to random classes and shift a block.
        pred = gt_train.copy()
        pred[pred == IGNORE_INDEX] = rng.integers(0, 19)
        noise = rng.random(pred.shape) < 0.1
        pred[noise] = rng.integers(0, 19, noise.sum())
        pred[10:30, 50:90] = np.roll(pred[10:30, 50:90], 7, axis=1)
        stem = gt_path.name.replace("_gtFine_labelIds.png", "")
        cv2.imwrite(str(results / f"{stem}_pred_labelIds.png"), train_ids_to_label_ids(pred))
        ours.update(pred, gt_train)
    official = _official(root, results, gts, monkeypatch)
    assert ours.miou() == pytest.approx(official["averageScoreClasses"], abs=0.01)
    assert ours.miou() == pytest.approx(official["averageScoreClasses"], abs=1e-9)
    for name, iou in zip(CITYSCAPES.names, ours.iou()):
        theirs = official["classScores"][name]
        assert (math.isnan(iou) and math.isnan(theirs)) or iou == pytest.approx(theirs), name


class ColourModel(nn.Module):
    """A real (tiny) segmentation network: a 1x1 conv scoring each pixel's distance to each
    class's palette colour, so it labels colour-coded images perfectly."""

    def __init__(self, palette: np.ndarray, bias_class: int | None = None) -> None:
        super().__init__()
        m, s = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
        centres = torch.tensor((palette / 255.0 - m) / s, dtype=torch.float32)  # C x 3
        self.conv = nn.Conv2d(3, len(palette), 1)
        with torch.no_grad():
            # -|x - c|^2 / 2 = x.c - |c|^2 / 2 + const
            self.conv.weight.copy_(centres[:, :, None, None])
            self.conv.bias.copy_(-(centres**2).sum(1) / 2)
            if bias_class is not None:  # a constant predictor instead
                self.conv.weight.zero_()
                self.conv.bias.zero_()
                self.conv.bias[bias_class] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _colour_folder(root: Path) -> ImageFolderDataset:
    rng = np.random.default_rng(0)
    for i in range(2):
        cells = rng.integers(0, 19, (6, 8)).astype(np.uint8)
        lab = cv2.resize(cells, (128, 96), interpolation=cv2.INTER_NEAREST)
        lab[:5, :5] = IGNORE_INDEX
        (root / "img").mkdir(parents=True, exist_ok=True)
        (root / "lab").mkdir(parents=True, exist_ok=True)
        img = CITYSCAPES.palette_rgb()[lab]
        cv2.imwrite(str(root / "img" / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "lab" / f"{i}.png"), lab)
    return ImageFolderDataset(root / "img", root / "lab")


def test_evaluate_perfect_and_resampled(tmp_path):
    ds = _colour_folder(tmp_path)
    model = ColourModel(CITYSCAPES.palette_rgb()[:19].astype(np.float64))
    full = evaluate(model, ds, scale=1.0, progress=False, prediction_dir=tmp_path / "pred")
    assert full["miou"] == pytest.approx(1.0) and full["num_images"] == 2
    saved = cv2.imread(str(tmp_path / "pred" / "0.png"), cv2.IMREAD_UNCHANGED)
    lab = ds[0]["label"]
    np.testing.assert_array_equal(saved[lab != IGNORE_INDEX], lab[lab != IGNORE_INDEX])
    half = evaluate(model, ds, scale=0.5, progress=False)
    assert 0.7 < half["miou"] < 1.0  # only resampled borders are lost
    ms = evaluate(model, ds, scales=[0.5, 1.0], flip=True, progress=False)
    assert ms["protocol"] == {**ms["protocol"], "scales": [0.5, 1.0], "flip": True,
                              "fusion": "mean softmax"}
    assert ms["miou"] > half["miou"]


def test_evaluate_constant_model_by_hand(tmp_path):
    ds = _colour_folder(tmp_path)
    res = evaluate(ColourModel(np.zeros((19, 3)), bias_class=3), ds, scale=0.5, progress=False)
    labels = np.concatenate([ds[i]["label"].ravel() for i in range(len(ds))])
    valid = labels[labels != IGNORE_INDEX]
    present = np.unique(valid)
    expected_wall = (valid == 3).sum() / valid.size
    assert res["iou"]["wall"] == pytest.approx(expected_wall)
    assert res["miou"] == pytest.approx(expected_wall / len(set(present) | {3}))
    assert res["pixel_accuracy"] == pytest.approx(expected_wall)
    np.testing.assert_array_equal(np.asarray(res["confusion_matrix"]).sum(0)[3], valid.size)


def test_evaluate_rejects_class_mismatch(tmp_path):
    ds = _colour_folder(tmp_path)
    with pytest.raises(ValueError, match="classes"):
        evaluate(ColourModel(np.zeros((11, 3))), ds, num_classes=11, progress=False)


def test_saved_label_ids_feed_cityscapesscripts(tmp_path, monkeypatch):
    root = tmp_path / "cs"
    gts = _cityscapes_fixture(root, n=2)
    torch.manual_seed(0)
    model = nn.Conv2d(3, 19, 1)  # random but fixed: varied predictions
    ds = CityscapesDataset(root, "val")
    res = evaluate(model, ds, scale=0.5, progress=False, prediction_dir=tmp_path / "pred",
                   save_label_ids=True)
    names = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert names == [g.name.replace("_gtFine_labelIds", "_labelIds") for g in gts]
    official = _official(root, tmp_path / "pred", gts, monkeypatch)
    assert res["miou"] == pytest.approx(official["averageScoreClasses"], abs=0.01)


# ----------------------------------------------------------------------------- CLI


def test_cli_help():
    """The flags, from the parser in process: test_evaluate_cli.py runs the script's --help."""
    from bisestdc_core.cli.evaluate import build_parser

    help_text = build_parser().format_help()
    for flag in ("--weights", "--scales", "--flip", "--save-predictions", "--dataset"):
        assert flag in help_text


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    models = pytest.importorskip("bisestdc_core.models")
    from bisestdc_core.cli.evaluate import main

    write_dataset(tmp_path / "data", 2, split="val", height=64, width=128, seed=5)
    torch.manual_seed(0)
    model = models.build_model("stdc1", 19)
    ckpt = tmp_path / "tiny.pth"
    models.save_checkpoint(ckpt, model, "stdc1", "cityscapes")
    out = tmp_path / "eval"
    code = main(["--weights", str(ckpt), "--dataset", "synthetic", "--root",
                 str(tmp_path / "data"), "--split", "val", "--scale", "0.5", "--out", str(out),
                 "--save-predictions", "--no-progress", "--device", "cpu"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["model"] == "stdc1"
    assert set(metrics["iou"]) == set(CITYSCAPES.names)
    assert set(metrics["small_object_iou"]) == {"pole", "traffic light", "traffic sign"}
    assert metrics["protocol"]["scales"] == [0.5]
    assert metrics["checkpoint"] == str(ckpt)
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert (out / "per_class_iou.png").stat().st_size > 0
    preds = sorted((out / "predictions").glob("*.png"))
    assert [p.name for p in preds] == ["synthtown_000000_000000_labelIds.png",
                                       "synthtown_000001_000000_labelIds.png"]
    ids = cv2.imread(str(preds[0]), cv2.IMREAD_UNCHANGED)
    assert ids.shape == (64, 128)
    label_ids_to_train_ids(ids)  # only valid Cityscapes label ids


def test_per_class_iou_comparison_draws_one_bar_per_run_and_class(tmp_path):
    from bisestdc_core.evaluation.plots import plot_per_class_iou_comparison

    names = ["road", "pole", "sign"]
    path = plot_per_class_iou_comparison(
        {"control": [0.9, 0.01, None], "class weights": [0.88, 0.09, 0.02]}, names,
        tmp_path / "ideas.png", small_objects=["pole", "sign"], title="ideas")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 300
    with pytest.raises(ValueError, match="2 IoUs for 3 classes"):
        plot_per_class_iou_comparison({"a": [0.1, 0.2]}, names, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no runs"):
        plot_per_class_iou_comparison({}, names, tmp_path / "none.png")
