"""The datasets the project reads: one table from which every dataset choice list comes.

Each entry names a dataset, the class set of its labels, its folder layout and whether it has
labelled splits (what training needs), and builds it. Training configs (``data.dataset``),
``evaluate --dataset``, ``bisestdc-make-bag --source`` and the int8 accuracy benchmark take
their choices from here, so a new dataset is one entry, not five lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bisestdc_core.classes import CAMVID, CITYSCAPES, ClassSet
from bisestdc_core.data.datasets import (
    CamVidDataset,
    CityscapesDataset,
    ImageFolderDataset,
    SegmentationDataset,
    Transform,
)

# (root, split, label_dir, class_set, transform) -> dataset; a builder ignores what its layout
# does not use (only an image folder takes a label folder and a class set).
Builder = Callable[..., SegmentationDataset]


@dataclass(frozen=True)
class DatasetKind:
    """One dataset the project reads.

    Attributes:
        name: the name configs and command lines use.
        class_set: the classes of its labels; None: the caller's (``--class-set``).
        layout: where its images and labels lie, for help texts and errors.
        labelled_splits: it has named splits with labels (``train``, ``val``), so a run can
            train on one and validate on another.
        build: makes the dataset from a root folder (see :data:`Builder`).
    """

    name: str
    class_set: ClassSet | None
    layout: str
    labelled_splits: bool
    build: Builder


def _cityscapes(root: Path, split: str, label_dir: Path | None, class_set: ClassSet | None,
                transform: Transform | None) -> SegmentationDataset:
    return CityscapesDataset(root, split, transform=transform)


def _camvid(root: Path, split: str, label_dir: Path | None, class_set: ClassSet | None,
            transform: Transform | None) -> SegmentationDataset:
    return CamVidDataset(root, split, transform=transform)


def _image_folder(root: Path, split: str, label_dir: Path | None, class_set: ClassSet | None,
                  transform: Transform | None) -> SegmentationDataset:
    return ImageFolderDataset(root, label_dir, class_set=class_set or CITYSCAPES,
                              transform=transform)


_CITYSCAPES_LAYOUT = ("ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png, labels "
                      "ROOT/gtFine/SPLIT/CITY/*_gtFine_labelIds.png")

DATASETS: dict[str, DatasetKind] = {kind.name: kind for kind in (
    DatasetKind("cityscapes", CITYSCAPES, _CITYSCAPES_LAYOUT, True, _cityscapes),
    DatasetKind("camvid", CAMVID, "ROOT/SPLIT/*.png|jpg, labels ROOT/SPLITannot/*.png "
                "(SegNet split, 11 = void)", True, _camvid),
    DatasetKind("folder", None, "ROOT/*.png|jpg, optional train-id labels "
                "LABEL_DIR/STEM.png (no splits)", False, _image_folder),
    DatasetKind("synthetic", CITYSCAPES, "written by bisestdc_core.data.synthetic in the "
                "Cityscapes layout: " + _CITYSCAPES_LAYOUT, True, _cityscapes),
)}

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
# An image folder has no splits, so training and validation would coincide.
TRAINABLE_DATASETS: tuple[str, ...] = tuple(k.name for k in DATASETS.values()
                                            if k.labelled_splits)


def get_dataset_kind(name: str) -> DatasetKind:
    """The entry of ``name``; ValueError naming the known ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset kind {name!r}; known: {list(DATASETS)}") from None


def build_dataset(
    kind: str,
    root: str | Path,
    split: str = "val",
    label_dir: str | Path | None = None,
    class_set: ClassSet | None = None,
    transform: Transform | None = None,
) -> SegmentationDataset:
    """The dataset ``kind`` (a name of :data:`DATASETS`) at ``root``.

    Args:
        kind: the dataset's name.
        root: dataset root; for ``folder`` the image folder.
        split: split name (ignored for ``folder``).
        label_dir: ``folder`` only: label folder (train-id PNGs), optional.
        class_set: ``folder`` only: classes of its labels (default Cityscapes); the others
            know theirs.
        transform: optional sample transform.

    Raises:
        ValueError: an unknown kind, or what the dataset raises for a bad folder.
        FileNotFoundError: a missing folder.
    """
    entry = get_dataset_kind(kind)
    return entry.build(Path(root), split, None if label_dir is None else Path(label_dir),
                       class_set, transform)


def default_class_set(kind: str) -> ClassSet:
    """The class set of ``kind``'s labels, Cityscapes for a folder whose caller names none."""
    return get_dataset_kind(kind).class_set or CITYSCAPES
