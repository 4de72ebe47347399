"""Segmentation datasets that all return the same sample dict.

A sample is ``{'image': H x W x 3 uint8 RGB, 'label': H x W uint8 train ids (IGNORE_INDEX = not
scored) or None, 'name': str, 'image_path': str}``; an optional ``transform`` (see
``bisestdc_core.data.transforms``) is applied to it last. Which dataset a name means, and the
building by name, is :mod:`bisestdc_core.data.registry`. Files are checked when they are read, so
that a bad file stops the run with its name instead of corrupting the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bisestdc_core.classes import CAMVID, CITYSCAPES, IGNORE_INDEX, ClassSet
from bisestdc_core.data.cityscapes_labels import label_ids_to_train_ids
from bisestdc_core.safe_files import require_regular_file

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")
CAMVID_VOID = 11


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path, shape: tuple[int, ...]) -> np.ndarray:
    """Read a single-channel label PNG and check it against its image size.

    Args:
        path: label file.
        shape: the image's (H, W, ...) shape.

    Returns:
        H x W uint8 raw label values.

    Raises:
        FileNotFoundError / ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label not found: {path}")
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise ValueError(f"cannot decode label: {path}")
    if label.ndim != 2:
        raise ValueError(f"label must be a single-channel image, got shape {label.shape}: {path}")
    if label.shape != tuple(shape[:2]):
        raise ValueError(
            f"label size {label.shape[1]}x{label.shape[0]} differs from its image size "
            f"{shape[1]}x{shape[0]}: {path}"
        )
    if label.dtype != np.uint8:
        if label.max() > 255:
            raise ValueError(f"label values above 255 in {path}")
        label = label.astype(np.uint8)
    return label


def check_train_ids(label: np.ndarray, num_classes: int, source: str) -> np.ndarray:
    """Raise ValueError naming ``source`` if ``label`` has ids other than 0..n-1 and ignore."""
    present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    bad = present[(present >= num_classes) & (present != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(
            f"unknown class id(s) {bad.tolist()} (expected 0..{num_classes - 1} or "
            f"{IGNORE_INDEX}): {source}"
        )
    return label


def _require_regular_if_present(path: Path | None, what: str) -> None:
    """A file that is there must be a regular one (a FIFO would block its reader forever)."""
    if path is not None and (path.exists() or path.is_symlink()):
        require_regular_file(path, what, ValueError)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


class SegmentationDataset:
    """Base class: a list of (image path, label path or None) pairs and the sample format.

    Subclasses fill ``self.items`` and implement ``_convert_label``.

    Attributes:
        class_set: classes of the train ids in the labels.
        items: (name, image path, label path or None) per sample, sorted by name.
        transform: applied to every sample dict, or None.
    """

    class_set: ClassSet = CITYSCAPES

    def __init__(self, transform: Transform | None = None) -> None:
        self.transform = transform
        self.items: list[tuple[str, Path, Path | None]] = []

    def __len__(self) -> int:
        return len(self.items)

    def _convert_label(self, raw: np.ndarray, source: str) -> np.ndarray:
        """Map the raw label file values to train ids (H x W uint8)."""
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The untransformed sample ``index``."""
        name, image_path, label_path = self.items[index]
        image = read_image_rgb(image_path)
        label = None
        if label_path is not None:
            raw = read_label(label_path, image.shape)
            label = self._convert_label(raw, str(label_path))
        return {"image": image, "label": label, "name": name, "image_path": str(image_path)}

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample


class CityscapesDataset(SegmentationDataset):
    """Cityscapes in its official layout (also what the synthetic generator writes).

    ``root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png`` with labels
    ``root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`` (labelIds, converted
    to train ids). A split without a ``gtFine/{split}`` folder (e.g. ``test``) has no labels.

    Args:
        root: dataset root (the folder holding ``leftImg8bit`` and ``gtFine``).
        split: ``train``, ``val`` or ``test``.
        transform: optional sample transform.
    """

    class_set = CITYSCAPES
    IMAGE_SUFFIX = "_leftImg8bit.png"
    LABEL_SUFFIX = "_gtFine_labelIds.png"

    def __init__(self, root: str | Path, split: str = "val", transform: Transform | None = None):
        super().__init__(transform)
        self.root = Path(root)
        self.split = split
        _require_dir(self.root, "dataset")
        image_dir = _require_dir(self.root / "leftImg8bit" / split, "image")
        label_dir = self.root / "gtFine" / split
        has_labels = label_dir.is_dir()
        for image_path in sorted(image_dir.glob(f"*/*{self.IMAGE_SUFFIX}")):
            require_regular_file(image_path, "image", ValueError)  # stat only: FIFOs never block
            name = image_path.name[: -len(self.IMAGE_SUFFIX)]
            label_path = (
                label_dir / image_path.parent.name / f"{name}{self.LABEL_SUFFIX}"
                if has_labels
                else None
            )
            _require_regular_if_present(label_path, "label")
            self.items.append((name, image_path, label_path))
        if not self.items:
            raise ValueError(f"no *{self.IMAGE_SUFFIX} images in {image_dir}/<city>/")

    def _convert_label(self, raw: np.ndarray, source: str) -> np.ndarray:
        return label_ids_to_train_ids(raw, source)


class ImageFolderDataset(SegmentationDataset):
    """A folder of images, with optional same-stem ``.png`` label files of train ids.

    Args:
        image_dir: folder of images (not recursive).
        label_dir: folder of ``STEM.png`` train-id labels, or None for unlabelled images.
        class_set: the classes of those train ids.
        transform: optional sample transform.
    """

    def __init__(
        self,
        image_dir: str | Path,
        label_dir: str | Path | None = None,
        class_set: ClassSet = CITYSCAPES,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(transform)
        self.class_set = class_set
        image_dir = _require_dir(Path(image_dir), "image")
        label_root = _require_dir(Path(label_dir), "label") if label_dir is not None else None
        for image_path in _list_images(image_dir):
            label_path = label_root / f"{image_path.stem}.png" if label_root else None
            _require_regular_if_present(label_path, "label")
            self.items.append((image_path.stem, image_path, label_path))
        if not self.items:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}")

    def _convert_label(self, raw: np.ndarray, source: str) -> np.ndarray:
        return check_train_ids(raw, self.class_set.num_classes, source)


class CamVidDataset(ImageFolderDataset):
    """CamVid, SegNet split: ``root/{split}/NAME.jpg`` and ``root/{split}annot/NAME.png``.

    Label values 0..10 are the CAMVID train ids, 11 (void) becomes IGNORE_INDEX.
    """

    def __init__(self, root: str | Path, split: str = "val", transform: Transform | None = None):
        root = _require_dir(Path(root), "dataset")
        label_dir = root / f"{split}annot"
        super().__init__(root / split, label_dir if label_dir.is_dir() else None, CAMVID,
                         transform)
        self.root = root
        self.split = split

    def _convert_label(self, raw: np.ndarray, source: str) -> np.ndarray:
        raw[raw == CAMVID_VOID] = IGNORE_INDEX  # read_label returns a fresh array
        return super()._convert_label(raw, source)


def _list_images(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    for image in images:  # a FIFO would block its reader's open() forever: stat, never open
        require_regular_file(image, "image", ValueError)
    return images
