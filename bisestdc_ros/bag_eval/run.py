"""One bag evaluation: read the model card, check the bag, run the mode, write the report.

The command line (`bisestdc_ros.cli.bag_eval`) checks its options and calls :func:`evaluate`;
other callers (the demo, tests) pass the same options as a Namespace, e.g.
``evaluate(tool_options(build_parser(), bag=..., mode="live", ...))``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from bisestdc_ros.bag_eval.live import run_live
from bisestdc_ros.bag_eval.model_card import check_bag_class_set, read_model_card
from bisestdc_ros.bag_eval.offline import run_offline
from bisestdc_ros.bag_eval.plan import inspect_bag
from bisestdc_ros.bag_eval.report import write_report

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

MODES = ("offline", "live")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Read the card, check the bag, run the mode, write the report; returns the report.

    ``args`` are the command line's options, checked by its ``check_args``.
    """
    card = read_model_card(args)
    log.info("model: classes %s, network %dx%d (%s)", card.class_set.name,
             card.network_size[1], card.network_size[0], card.source)
    plan = inspect_bag(args.bag, args.image_topic, args.labels_topic, card.class_set,
                       use_labels=not args.no_labels)
    if plan.has_labels:
        check_bag_class_set(card, plan.class_set, plan.path)
    log.info("bag %s: %d frames on %s (%dx%d, %.2f Hz), %s", plan.path, plan.frames,
             plan.image_topic, plan.width, plan.height, plan.rate_hz,
             f"{len(plan.label_stamps)} with labels on {plan.labels_topic}" if plan.has_labels
             else "no labels: inspecting")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "offline":
        result = run_offline(plan, args, card)
    else:
        result = run_live(plan, args, args.out, card)
    return write_report(plan, result, card.class_set, args.mode, args.out)
