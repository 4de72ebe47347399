"""Scoring predictions against ground truth by header stamp, and summarising latency.

:class:`StampMatcher` pairs predictions and labels that carry the same stamp (in any order)
and feeds them to a confusion matrix; :class:`FrameTiming` and :func:`latency_summary` turn
per-frame stage timings into percentiles. :class:`RunResult` is what the offline and live
runs hand to the report (predictions are kept PNG-compressed for the overlay video, about
1/50 of their raw size), and :func:`sheet_stamps` picks the contact sheet's frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from bisestdc_core.classes import ClassSet
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bags.messages import format_stamp
from bisestdc_ros.node.image_codec import ImageDecodeError

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

PERCENTILES = (50, 90, 99)
CONTACT_SHEET_FRAMES = 8


class StampMatcher:
    """Scores predictions against ground truth with the same header stamp, in any order.

    Either side may come first; a pair is scored (and forgotten) as soon as both are in, so
    memory holds only the unmatched part. A pair of different sizes (a compressed frame whose
    size changed against its labels) is not scored; ``mismatched`` names it.
    """

    def __init__(self, class_set: ClassSet):
        self.matrix = ConfusionMatrix(class_set.num_classes)
        self._predictions: dict[int, np.ndarray] = {}
        self._truth: dict[int, np.ndarray] = {}
        self.scored: set[int] = set()
        self.mismatched: list[str] = []

    def add_prediction(self, stamp: int, labels: np.ndarray) -> None:
        self._add(stamp, labels, self._predictions, self._truth, prediction_first=True)

    def add_ground_truth(self, stamp: int, labels: np.ndarray) -> None:
        self._add(stamp, labels, self._truth, self._predictions, prediction_first=False)

    def _add(self, stamp: int, labels: np.ndarray, mine: dict[int, np.ndarray],
             other: dict[int, np.ndarray], prediction_first: bool) -> None:
        if stamp in self.scored:
            return
        partner = other.pop(stamp, None)
        if partner is None:
            mine[stamp] = labels
            return
        prediction, truth = (labels, partner) if prediction_first else (partner, labels)
        if prediction.shape != truth.shape:
            reason = (f"stamp {format_stamp(stamp)}: frame {prediction.shape[1]}x"
                      f"{prediction.shape[0]} and labels {truth.shape[1]}x{truth.shape[0]} "
                      f"differ in size; not scored")
            log.warning("%s", reason)
            self.mismatched.append(reason)
            return
        self.matrix.update(prediction, truth)
        self.scored.add(stamp)


@dataclass
class FrameTiming:
    """Stage timings of one processed frame; ``t`` is seconds since the run started."""

    stamp: int
    t: float
    stages: StageTimings


def latency_summary(timings: Sequence[FrameTiming]) -> dict[str, dict[str, float]]:
    """Per stage: p50/p90/p99, mean, max (ms) and the sample count."""
    stages: dict[str, list[float]] = {}
    for timing in timings:
        for name, value in timing.stages.measured().items():
            if math.isfinite(value) and value >= 0:
                stages.setdefault(name, []).append(value)
    summary = {}
    for name, values in stages.items():
        arr = np.asarray(values, np.float64)
        row = {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES}
        row.update(mean=float(arr.mean()), max=float(arr.max()), count=int(arr.size))
        summary[name] = row
    return summary


@dataclass
class RunResult:
    """What one mode produced, for the report.

    Attributes:
        matcher: the scores (None when the bag has no labels).
        processed: stamps with a prediction.
        timings: per-frame stage latencies (live: of the real-time pass).
        wall_s: seconds from the first frame sent to the last output.
        engine: engine, device, precision, network size and class set that ran.
        details: mode details (replay, QoS, passes ...).
        predictions: PNG-encoded labels per stamp (the overlay video and contact sheet).
        bad_frames: one line per frame that could not be used (bag, topic, stamp, why).
        dropped: stamps sent but never answered (live real-time pass; None offline).
    """

    matcher: StampMatcher | None
    processed: set[int]
    timings: list[FrameTiming]
    wall_s: float
    engine: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    predictions: dict[int, bytes] = field(default_factory=dict)
    bad_frames: list[str] = field(default_factory=list)
    dropped: set[int] | None = None

    def keep_prediction(self, stamp: int, labels: np.ndarray) -> None:
        """Store a prediction losslessly and compactly (PNG, fastest level)."""
        ok, encoded = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ImageDecodeError(f"cannot PNG-encode the prediction at {format_stamp(stamp)}")
        self.predictions[stamp] = encoded.tobytes()
        self.processed.add(stamp)

    def prediction(self, stamp: int) -> np.ndarray | None:
        """The stored prediction of ``stamp`` (H x W uint8), None if there is none."""
        data = self.predictions.get(stamp)
        if data is None:
            return None
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def sheet_stamps(plan: BagPlan, count: int = CONTACT_SHEET_FRAMES) -> set[int]:
    """Stamps of up to ``count`` evenly spaced frames, the contact sheet's candidates."""
    if not plan.stamps:
        return set()
    picks = np.linspace(0, plan.frames - 1, min(count, plan.frames)).round().astype(int)
    return {plan.stamps[i] for i in picks}
