"""Dataset loading on tiny fixtures in the official layouts, and the errors that name files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bisestdc_core.classes import CAMVID, CITYSCAPES, IGNORE_INDEX
from bisestdc_core.data import cityscapes_labels
from bisestdc_core.data.datasets import (
    CamVidDataset,
    CityscapesDataset,
    ImageFolderDataset,
)
from bisestdc_core.data.registry import DATASET_NAMES, build_dataset

H, W = 8, 12


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _image(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_cityscapes(root: Path, split: str = "val", label_ids: np.ndarray | None = None) -> Path:
    """Two cities, three frames, official names; returns the first label path."""
    first = None
    for i, (city, seq, frame) in enumerate([("aachen", 0, 19), ("aachen", 1, 19),
                                            ("bremen", 5, 42)]):
        stem = f"{city}_{seq:06d}_{frame:06d}"
        _write(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _image(i))
        lab = label_ids if label_ids is not None else np.full((H, W), 7, np.uint8)
        p = _write(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", lab)
        first = first or p
    return first


def test_cityscapes_layout_and_label_mapping(tmp_path):
    label_ids = np.zeros((H, W), np.uint8)
    label_ids[0] = 7  # road -> 0
    label_ids[1] = 26  # car -> 13
    label_ids[2] = 1  # ego vehicle -> ignore
    label_ids[3] = 33  # bicycle -> 18
    label_ids[4] = 9  # parking: not evaluated -> ignore
    make_cityscapes(tmp_path, label_ids=label_ids)
    ds = CityscapesDataset(tmp_path, "val")
    assert len(ds) == 3
    assert ds.class_set is CITYSCAPES
    assert [it[0] for it in ds.items] == ["aachen_000000_000019", "aachen_000001_000019",
                                          "bremen_000005_000042"]
    s = ds[0]
    assert set(s) == {"image", "label", "name", "image_path"}
    assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    # RGB order: the file was written as BGR by cv2.imwrite.
    np.testing.assert_array_equal(s["image"], _image(0)[..., ::-1])
    assert s["label"].dtype == np.uint8
    assert s["label"][0, 0] == 0 and s["label"][1, 0] == 13 and s["label"][3, 0] == 18
    assert s["label"][2, 0] == IGNORE_INDEX and s["label"][4, 0] == IGNORE_INDEX
    assert s["label"][5, 0] == IGNORE_INDEX  # unlabeled
    assert s["image_path"].endswith("aachen_000000_000019_leftImg8bit.png")
    assert build_dataset("synthetic", tmp_path, "val").items == ds.items
    assert build_dataset("cityscapes", tmp_path, "val").items == ds.items


def test_cityscapes_split_without_labels(tmp_path):
    _write(tmp_path / "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png", _image())
    assert CityscapesDataset(tmp_path, "test")[0]["label"] is None


def test_label_tables_match_cityscapesscripts():
    from cityscapesscripts.helpers.labels import labels

    for label in labels:
        if label.id < 0:
            continue
        expected = label.trainId if 0 <= label.trainId < 255 else IGNORE_INDEX
        assert cityscapes_labels.LABEL_ID_TO_TRAIN_ID[label.id] == expected, label.name
    # The copied table (used without cityscapesscripts) equals the official one.
    assert cityscapes_labels._FALLBACK_TABLE == cityscapes_labels._official_table()
    train = np.arange(19, dtype=np.uint8)
    back = cityscapes_labels.label_ids_to_train_ids(cityscapes_labels.train_ids_to_label_ids(train))
    np.testing.assert_array_equal(back, train)
    assert cityscapes_labels.train_ids_to_label_ids(np.array([255], np.uint8))[0] == 0


def test_camvid_layout(tmp_path):
    lab = (np.arange(H * W) % 12).astype(np.uint8).reshape(H, W)  # 0..11, 11 = void
    for split in ("train", "val"):
        _write(tmp_path / split / "0001TP_006690.jpg", _image())
        _write(tmp_path / f"{split}annot" / "0001TP_006690.png", lab)
    ds = build_dataset("camvid", tmp_path, "train")
    assert isinstance(ds, CamVidDataset) and ds.class_set is CAMVID
    s = ds[0]
    assert s["name"] == "0001TP_006690"
    expected = lab.copy()
    expected[lab == 11] = IGNORE_INDEX
    np.testing.assert_array_equal(s["label"], expected)


def test_folder_with_and_without_labels(tmp_path):
    _write(tmp_path / "img" / "b.png", _image(1))
    _write(tmp_path / "img" / "a.jpg", _image(2))
    (tmp_path / "img" / "notes.txt").write_text("not an image")
    lab = np.full((H, W), 3, np.uint8)
    lab[0] = IGNORE_INDEX
    _write(tmp_path / "lab" / "a.png", lab)
    _write(tmp_path / "lab" / "b.png", lab)
    ds = ImageFolderDataset(tmp_path / "img", tmp_path / "lab")
    assert [s["name"] for s in ds] == ["a", "b"]
    np.testing.assert_array_equal(ds[1]["label"], lab)
    unlabeled = build_dataset("folder", tmp_path / "img")
    assert len(unlabeled) == 2 and unlabeled[0]["label"] is None
    camvid = ImageFolderDataset(tmp_path / "img", tmp_path / "lab", class_set=CAMVID)
    assert camvid.class_set is CAMVID


def test_transform_is_applied(tmp_path):
    make_cityscapes(tmp_path)
    ds = CityscapesDataset(tmp_path, "val", transform=lambda s: {**s, "name": "x"})
    assert ds[0]["name"] == "x"
    assert ds.load(0)["name"] == "aachen_000000_000019"
    with pytest.raises(IndexError):
        ds[3]


def test_missing_folder_names_it(tmp_path):
    missing = tmp_path / "nowhere"
    for kind in DATASET_NAMES:
        with pytest.raises(FileNotFoundError, match="nowhere"):
            build_dataset(kind, missing, "val")
    make_cityscapes(tmp_path / "cs")
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/train"):
        CityscapesDataset(tmp_path / "cs", "train")


def test_empty_split_names_folder(tmp_path):
    (tmp_path / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"leftImg8bit/val"):
        CityscapesDataset(tmp_path, "val")
    (tmp_path / "camvid" / "val").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"camvid/val"):
        CamVidDataset(tmp_path / "camvid", "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ImageFolderDataset(tmp_path / "empty")


def test_missing_label_file_names_it(tmp_path):
    first = make_cityscapes(tmp_path)
    first.unlink()
    ds = CityscapesDataset(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=first.name):
        ds[0]


def test_size_mismatch_names_label(tmp_path):
    first = make_cityscapes(tmp_path)
    _write(first, np.full((H + 1, W), 7, np.uint8))
    with pytest.raises(ValueError, match=first.name):
        CityscapesDataset(tmp_path, "val")[0]


def test_unknown_class_ids_name_file(tmp_path):
    bad = np.full((H, W), 7, np.uint8)
    bad[0, 0] = 40  # not a Cityscapes label id
    first = make_cityscapes(tmp_path / "cs", label_ids=bad)
    with pytest.raises(ValueError, match=rf"40.*{first.name}"):
        CityscapesDataset(tmp_path / "cs", "val")[0]
    _write(tmp_path / "cv" / "val" / "x.png", _image())
    _write(tmp_path / "cv" / "valannot" / "x.png", np.full((H, W), 12, np.uint8))
    with pytest.raises(ValueError, match=r"12.*valannot/x.png"):
        CamVidDataset(tmp_path / "cv", "val")[0]
    _write(tmp_path / "f" / "img" / "y.png", _image())
    _write(tmp_path / "f" / "lab" / "y.png", np.full((H, W), 19, np.uint8))
    with pytest.raises(ValueError, match=r"19.*lab/y.png"):
        ImageFolderDataset(tmp_path / "f" / "img", tmp_path / "f" / "lab")[0]


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown dataset kind"):
        build_dataset("kitti", "/tmp", "val")
