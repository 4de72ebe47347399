"""Class sets (names, colours, small-object classes) shared by data, evaluation and the node.

Label maps everywhere in the project hold *train ids*: 0..num_classes-1, and IGNORE_INDEX for
pixels that are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
# Labels travel as uint8 with IGNORE_INDEX reserved: the most classes any network, checkpoint
# card, training config or node may have.
MAX_CLASSES = IGNORE_INDEX - 1


@dataclass(frozen=True)
class ClassSet:
    """The classes a network predicts.

    Attributes:
        name: short identifier used in configs and checkpoints (``cityscapes``, ``camvid``).
        names: class names indexed by train id.
        colors: RGB colour per train id (the dataset's official palette).
        small_objects: names of the classes reported as "small objects".
    """

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    small_objects: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def small_object_ids(self) -> tuple[int, ...]:
        return tuple(self.names.index(n) for n in self.small_objects)

    def palette_rgb(self) -> np.ndarray:
        """256 x 3 uint8 lookup table: train id -> RGB; ignore and unknown ids are black."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, np.uint8)
        return lut

    def palette_bgr(self) -> np.ndarray:
        return np.ascontiguousarray(self.palette_rgb()[:, ::-1])


# Names and colours from cityscapesscripts' `labels` table (train ids 0..18).
CITYSCAPES = ClassSet(
    name="cityscapes",
    names=(
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
        "bus", "train", "motorcycle", "bicycle",
    ),
    colors=(
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
    small_objects=("pole", "traffic light", "traffic sign"),
)

# CamVid, 11 classes of the SegNet split (void = 11 in the label files -> ignored).
CAMVID = ClassSet(
    name="camvid",
    names=(
        "sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car",
        "pedestrian", "bicyclist",
    ),
    colors=(
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
        (0, 128, 192),
    ),
    small_objects=("pole", "sign", "pedestrian", "bicyclist"),
)

CLASS_SETS: dict[str, ClassSet] = {c.name: c for c in (CITYSCAPES, CAMVID)}


def get_class_set(name: str) -> ClassSet:
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise ValueError(f"unknown class set {name!r}; known: {sorted(CLASS_SETS)}") from None
