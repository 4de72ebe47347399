"""Live mode's segment_node for a bag and model: its parameters, the topic the frames are
replayed on, and the Fast DDS large-images profile when the bag's frames need it.

Starting and stopping the node is :mod:`bisestdc_ros.node.process`'s.
"""

from __future__ import annotations

import argparse
import logging
import os

from bisestdc_ros.bag_eval.model_card import EvalModel
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bags.messages import COMPRESSED_IMAGE
from bisestdc_ros.node.process import (
    FASTDDS_PROFILE_VARIABLES,
    LARGE_FRAME_BYTES,
    fastdds_profile,
    segment_node_command,
)

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"


def replay_topic(plan: BagPlan, args: argparse.Namespace) -> tuple[str, str]:
    """(topic the node is configured with, topic the frames are published on).

    The node subscribes ``<topic>/compressed`` for compressed input (image_transport naming),
    so a compressed bag topic is published under that name whatever it was recorded as.
    """
    from bisestdc_ros.node.config import input_topic  # noqa: PLC0415

    base = args.replay_topic or plan.image_topic
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    input_type = "compressed" if plan.image_type == COMPRESSED_IMAGE else "raw"
    return base, input_topic(base, input_type)


def node_command(plan: BagPlan, args: argparse.Namespace, camera_topic: str,
                 card: EvalModel) -> list[str]:
    """``python -m bisestdc_ros.cli.segment_node --ros-args ...`` for this bag and model.

    The network size is always passed: the card's (or ``--network-size``), never the node's
    default.
    """
    params = [f"image_topics:=['{camera_topic}']",
              f"input_type:={'compressed' if plan.image_type == COMPRESSED_IMAGE else 'raw'}",
              f"qos:={'reliable' if args.reliable else 'sensor_data'}",
              # Only labels and latency are recorded; the node skips unsubscribed outputs
              # anyway, these keep a stray viewer from slowing the measurement down.
              "publish_color:=false", "publish_overlay:=false"]
    for name, value in (("weights", args.weights), ("onnx", args.onnx),
                        ("model_name", args.model_name)):
        if value:
            params.append(f"{name}:={value}")
    params += [f"engine:={args.engine}", f"device:={args.device}",
               f"precision:={args.precision}", f"num_classes:={card.class_set.num_classes}",
               f"network_height:={card.network_size[0]}",
               f"network_width:={card.network_size[1]}"]
    ros_args = ["--params-file", str(args.params_file)] if args.params_file else []
    for param in params + list(args.node_param or []):
        ros_args += ["-p", param]
    return segment_node_command(ros_args)


def configure_large_frames(plan: BagPlan) -> str | None:
    """Set the Fast DDS large-images profile for this process (and so the node) if needed.

    Must run before rclpy.init: Fast DDS reads the variable when the participant is created.
    A profile the user already set is kept.
    """
    if plan.frame_bytes <= LARGE_FRAME_BYTES:
        return None
    current = next((os.environ[v] for v in FASTDDS_PROFILE_VARIABLES if v in os.environ), None)
    if current:
        return current
    profile = fastdds_profile()
    if profile is None:
        log.warning("frames of %d bytes but no fastdds_large_images.xml found; best-effort "
                    "frames may be lost", plan.frame_bytes)
        return None
    for variable in FASTDDS_PROFILE_VARIABLES:
        os.environ[variable] = str(profile)
    log.info("frames of %.1f MB: using the Fast DDS profile %s", plan.frame_bytes / 2**20,
             profile)
    return str(profile)
