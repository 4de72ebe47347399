"""bisestdc-bag-eval: score segmentation on a rosbag2 recording, offline or through the live node.

Modes:

- ``offline``: each image of the bag goes straight to a `Segmenter`; predictions are matched to
  the labels topic by header stamp. Latency comes from ``Segmenter.timings_ms`` (plus decode).
- ``live``: the bag's images are replayed on real ROS 2 topics at the recorded rate (times
  ``--rate-factor``) into a running ``segment_node`` (started here as a subprocess, or already
  running with ``--no-start-node``); the node's ``segmentation/labels`` and
  ``segmentation/latency`` outputs are recorded and matched to the ground truth by header stamp.
  A frame with no labels output is a drop (the node keeps only the newest frame, so a slow
  engine drops frames instead of queueing them). Stage latencies are the node's own; the
  end-to-end latency is measured here, from publishing a frame to receiving its labels (the
  node's ``end_to_end_ms`` compares against the bag's stamps, which lie in the past).

The bag is checked completely before any inference work: it must be readable, the topics must
exist and hold messages, and labels must have the images' size. Everything is written to
``--out``: ``report.json``, ``report.md``, ``per_class_iou.png``, ``latency_histogram.png``,
``latency_timeline.png`` and ``contact_sheet.png`` (frames blended with the predicted colours).
With no drops, live and offline runs with the same engine and network size give the same mIoU.

Examples::

    bisestdc-bag-eval --bag bags/synth --mode offline --weights model.pt --engine onnxruntime \\
        --network-size 256 512 --out reports/offline
    bisestdc-bag-eval --bag bags/synth --mode live --weights model.pt --engine onnxruntime \\
        --network-size 256 512 --reliable --out reports/live
"""

from bisestdc_ros.bag_eval.cli import MODES, build_parser, check_args, evaluate, main
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.live import (
    ReplayRecorder,
    replay,
    run_live,
    to_ros_msg,
    wait_until,
    warm_up,
)
from bisestdc_ros.bag_eval.node_process import (
    FASTDDS_PROFILE_VARIABLES,
    LARGE_FRAME_BYTES,
    configure_large_frames,
    fastdds_profile,
    model_class_set,
    node_command,
    replay_topic,
    segment_node_command,
    start_node,
    stop_node,
)
from bisestdc_ros.bag_eval.offline import build_segmenter, run_offline
from bisestdc_ros.bag_eval.plan import BagPlan, format_stamp, inspect_bag
from bisestdc_ros.bag_eval.report import (
    build_report,
    contact_sheet,
    plot_latency,
    report_markdown,
    write_report,
)
from bisestdc_ros.bag_eval.scoring import (
    PERCENTILES,
    FrameTiming,
    RunResult,
    StampMatcher,
    latency_summary,
    sheet_stamps,
)

__all__ = [
    "FASTDDS_PROFILE_VARIABLES", "LARGE_FRAME_BYTES", "MODES", "PERCENTILES", "BagPlan",
    "EvalError", "FrameTiming", "ReplayRecorder", "RunResult", "StampMatcher", "build_parser",
    "build_report", "build_segmenter", "check_args", "configure_large_frames", "contact_sheet",
    "evaluate", "fastdds_profile", "format_stamp", "inspect_bag", "latency_summary", "main",
    "model_class_set", "node_command", "plot_latency", "replay", "replay_topic",
    "report_markdown", "run_live", "run_offline", "segment_node_command", "sheet_stamps",
    "start_node", "stop_node",
    "to_ros_msg", "wait_until", "warm_up", "write_report",
]
