"""Datasets (Cityscapes, CamVid, image folders, synthetic scenes) and training augmentations.

Import submodules directly for the generator and the transforms (they pull in cv2 / torch):
``bisestdc_core.data.synthetic``, ``bisestdc_core.data.transforms``.
"""

from bisestdc_core.data.cityscapes_labels import (
    label_ids_to_train_ids,
    train_ids_to_label_ids,
)
from bisestdc_core.data.datasets import (
    CamVidDataset,
    CityscapesDataset,
    ImageFolderDataset,
    SegmentationDataset,
)
from bisestdc_core.data.registry import DATASET_NAMES, DATASETS, build_dataset

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "CamVidDataset",
    "CityscapesDataset",
    "ImageFolderDataset",
    "SegmentationDataset",
    "build_dataset",
    "label_ids_to_train_ids",
    "train_ids_to_label_ids",
]
