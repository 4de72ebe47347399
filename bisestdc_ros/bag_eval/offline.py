"""Offline mode: segment every image of the bag in-process and score it.

Each image goes straight to a :class:`bisestdc_core.inference.Segmenter`, no ROS involved;
predictions are matched to the labels topic by header stamp. Latency comes from the
segmenter's own stage timings plus the time spent decoding the bag message.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from tqdm import tqdm

from bisestdc_core.classes import ClassSet
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.scoring import FrameTiming, RunResult, StampMatcher, sheet_stamps
from bisestdc_ros.bag_io import BagReader, frame_from_msg, labels_from_msg, stamp_ns

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"


def build_segmenter(args: argparse.Namespace) -> Any:
    """The Segmenter the arguments describe (raises EvalError when it cannot be built)."""
    from bisestdc_core.inference import Segmenter  # noqa: PLC0415 (torch import is slow)

    try:
        return Segmenter(weights=args.weights, onnx=args.onnx, engine=args.engine,
                         device=args.device, precision=args.precision,
                         network_size=args.network_size, model_name=args.model_name,
                         num_classes=args.num_classes, class_set=args.class_set)
    except (ValueError, RuntimeError, OSError) as error:
        raise EvalError(f"cannot create the segmenter: {error}") from error


def run_offline(plan: BagPlan, args: argparse.Namespace) -> tuple[RunResult, ClassSet]:
    """Segment every image of the bag in-process and score it against the labels by stamp."""
    segmenter = build_segmenter(args)
    log.info("offline: %r", segmenter)
    matcher = StampMatcher(segmenter.class_set)
    keep_stamps = sheet_stamps(plan)
    result = RunResult(matcher, set(), [], 0.0, _engine_info(segmenter))
    start = time.perf_counter()
    with BagReader(plan.path) as bag, tqdm(total=plan.frames, desc="offline", unit="frame") as bar:
        for topic, _, msg in bag.messages([plan.image_topic, plan.labels_topic]):
            stamp = stamp_ns(msg)
            if topic == plan.labels_topic:
                matcher.add_ground_truth(stamp, labels_from_msg(msg, plan.labels_type))
                continue
            t0 = time.perf_counter()
            frame, order = frame_from_msg(msg, plan.image_type)
            decode_ms = (time.perf_counter() - t0) * 1e3
            out = segmenter.segment(frame, channel_order=order)
            stages = {"decode_ms": decode_ms}
            stages.update({f"{k}_ms": float(v) for k, v in out.timings_ms.items()})
            result.timings.append(FrameTiming(stamp, time.perf_counter() - start, stages))
            result.processed.add(stamp)
            matcher.add_prediction(stamp, out.labels)
            if stamp in keep_stamps:
                result.keep[stamp] = out.labels
            bar.update()
    result.wall_s = time.perf_counter() - start
    return result, segmenter.class_set


def _engine_info(segmenter: Any) -> dict[str, Any]:
    return {"engine": segmenter.engine_name, "device": segmenter.device,
            "precision": segmenter.precision, "network_size": list(segmenter.network_size),
            "class_set": segmenter.class_set.name}
