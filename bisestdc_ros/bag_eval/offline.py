"""Offline mode: segment every image of the bag in-process (and score it when it has labels).

Each image goes straight to a :class:`bisestdc_core.inference.Segmenter`, no ROS involved, at
the model card's network size; predictions are matched to the labels topic by header stamp.
Latency comes from the segmenter's own stage timings plus the time spent decoding the bag
message. A frame that cannot be decoded is counted, named (bag, topic, stamp) and skipped.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from typing import Any

from tqdm import tqdm

from bisestdc_core.cli.model_options import segmenter_from_args
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.model_card import EvalModel
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.scoring import FrameTiming, RunResult, StampMatcher
from bisestdc_ros.bags.messages import frame_from_msg, labels_from_msg, stamp_ns
from bisestdc_ros.bags.reader import BagReader
from bisestdc_ros.node.image_codec import ImageDecodeError

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"


def build_segmenter(args: argparse.Namespace, card: EvalModel) -> Any:
    """The Segmenter the arguments and the card describe (EvalError when it cannot be built)."""
    try:
        return segmenter_from_args(args, network_size=card.network_size,
                                   num_classes=card.class_set.num_classes,
                                   class_set=card.class_set)
    except (ValueError, RuntimeError, OSError) as error:
        raise EvalError(f"cannot create the segmenter: {error}") from error


def run_offline(plan: BagPlan, args: argparse.Namespace, card: EvalModel) -> RunResult:
    """Segment every image of the bag in-process and score it against the labels by stamp."""
    segmenter = build_segmenter(args, card)
    log.info("offline: %r", segmenter)
    matcher = StampMatcher(card.class_set) if plan.has_labels else None
    result = RunResult(matcher, set(), [], 0.0, {**card.describe(), **engine_info(segmenter)})
    result.bad_frames.extend(plan.bad_frames)
    topics = [plan.image_topic] + ([plan.labels_topic] if plan.labels_topic else [])
    start = time.perf_counter()
    with BagReader(plan.path) as bag, tqdm(total=plan.frames, desc="offline", unit="frame") as bar:
        # Messages the plan already named as bad are skipped silently here.
        for topic, _, msg in bag.messages(topics, on_bad_message=lambda *_: None):
            stamp = stamp_ns(msg)
            if topic == plan.labels_topic:
                assert matcher is not None and plan.labels_type is not None
                matcher.add_ground_truth(stamp, labels_from_msg(msg, plan.labels_type))
                continue
            t0 = time.perf_counter()
            try:
                frame, order = frame_from_msg(msg, plan.image_type)
            except ImageDecodeError as error:
                reason = plan.frame_problem(stamp, error.reason)
                log.warning("skipped: %s", reason)
                result.bad_frames.append(reason)
                bar.update()
                continue
            decode_ms = (time.perf_counter() - t0) * 1e3
            out = segmenter.segment(frame, channel_order=order)
            stages = replace(out.timings, decode_ms=decode_ms)
            result.timings.append(FrameTiming(stamp, time.perf_counter() - start, stages))
            result.keep_prediction(stamp, out.labels)
            if matcher is not None:
                matcher.add_prediction(stamp, out.labels)
            bar.update()
    result.wall_s = time.perf_counter() - start
    return result


def engine_info(segmenter: Any) -> dict[str, Any]:
    """What ran: engine, device, precision, network size and class set of a Segmenter."""
    return {"engine": segmenter.engine_name, "device": segmenter.device,
            "precision": segmenter.precision, "network_size": list(segmenter.network_size),
            "class_set": segmenter.class_set.name}
