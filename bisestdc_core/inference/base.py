"""What every engine returns, and the host-side (numpy/OpenCV) steps ONNX Runtime and TensorRT
share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from bisestdc_core.classes import ClassSet
from bisestdc_core.model_card import ModelCard
from bisestdc_core.stage_timings import StageTimings


@dataclass
class EngineOutput:
    """One frame's result from an engine.

    Attributes:
        labels: H x W uint8 train ids at the frame's size.
        confidence: H x W uint8 or None.
        timings: the preprocess, inference and postprocess stages in ms.
        network_labels: h x w uint8 train ids at the network's resolution, before the resize
            to the frame (None where the engine does not keep them).
    """

    labels: np.ndarray
    confidence: np.ndarray | None
    timings: StageTimings = field(default_factory=StageTimings)
    network_labels: np.ndarray | None = None


class Engine(Protocol):
    """What every registered engine's ``build`` returns (see :mod:`.registry`)."""

    name: str
    precision: str
    device: str
    network_size: tuple[int, int]
    card: ModelCard  # what it runs: classes, normalisation, network size, precision

    def infer(self, frame: np.ndarray, channel_order: str, with_confidence: bool) -> EngineOutput:
        """frame: H x W x 3 uint8 in ``channel_order``."""
        ...


class SegmentedFrame(Protocol):
    """What a `FrameSegmenter` hands back per frame (a Segmenter's SegmentationResult)."""

    @property
    def labels(self) -> np.ndarray: ...  # H x W uint8 train ids at the frame's size

    @property
    def confidence(self) -> np.ndarray | None: ...

    @property
    def timings(self) -> StageTimings: ...


class FrameSegmenter(Protocol):
    """What the ROS node (and its benchmarks) use of a `Segmenter`: the seam where tests inject
    a stand-in. Results may also carry ``network_labels`` (callers read it with getattr)."""

    @property
    def engine_name(self) -> str: ...

    @property
    def precision(self) -> str: ...

    @property
    def network_size(self) -> tuple[int, int]: ...  # (H, W) the network runs at

    @property
    def class_set(self) -> ClassSet: ...

    def segment(self, frame: np.ndarray, channel_order: str = "rgb",
                with_confidence: bool = False) -> SegmentedFrame:
        """frame: H x W x 3 uint8 in ``channel_order`` (``rgb`` or ``bgr``)."""
        ...


def prepare_frame(
    frame: np.ndarray, channel_order: str, engine_order: str,
    input_hw: Sequence[int] | None = None,
) -> np.ndarray:
    """H x W x 3 uint8 -> 1 x h x w x 3 contiguous uint8 in the engine's channel order.

    ``input_hw`` is the engine's fixed input size (None: any size). Resizing here (OpenCV,
    bilinear) only happens for fixed-size graphs; dynamic graphs resize inside, exactly like
    the PyTorch engine.
    """
    if input_hw is not None and tuple(frame.shape[:2]) != tuple(input_hw):
        frame = cv2.resize(frame, (int(input_hw[1]), int(input_hw[0])),
                           interpolation=cv2.INTER_LINEAR)
    if channel_order != engine_order:
        frame = frame[..., ::-1]
    return np.ascontiguousarray(frame)[None]


def resize_map(labels: np.ndarray, size_hw: Sequence[int]) -> np.ndarray:
    """h x w uint8 -> H x W uint8, nearest (OpenCV's floor rule, as torch's 'nearest')."""
    if tuple(labels.shape[:2]) == tuple(size_hw):
        return labels
    return cv2.resize(labels, (int(size_hw[1]), int(size_hw[0])),
                      interpolation=cv2.INTER_NEAREST)
