"""bisestdc-bag-eval: segment a rosbag2 recording offline or through the live node, and score
it where the bag has ground-truth labels.

Modes:

- ``offline``: each image of the bag goes straight to a `Segmenter`; predictions are matched to
  the labels topic by header stamp. Latency comes from the Segmenter's stage timings (plus decode).
- ``live``: the bag's images are replayed on real ROS 2 topics into a running ``segment_node``
  (started here as a subprocess, or already running with ``--no-start-node``), in real time
  (drops as on the vehicle), closed loop (every frame answered: scores independent of the
  machine's load) or both (see :mod:`.live`); the node's ``segmentation/labels`` and
  ``segmentation/latency`` outputs are recorded and matched to the ground truth by header stamp.
  Stage latencies are the node's own; the end-to-end latency is measured here, from publishing
  a frame to receiving its labels.

A bag without labels (a recorded drive) is inspected: overlay video, contact sheet, predicted
class shares and small objects over time, latency and drops. The model card (checkpoint or
ONNX sidecar) sets the class set and network size; a bag labelled for another class set is
refused. The bag is checked before any inference work: it must be readable, the topics must
exist and hold messages, labels must be in the class set's range and of the images' size.
Frames that cannot be decoded are counted, named and skipped. Everything is written to
``--out``: ``report.json``, ``report.md``, ``overlay.mp4``, ``contact_sheet.png``,
``class_shares.png``, ``small_objects.png``, ``latency_histogram.png``,
``latency_timeline.png`` and, with labels, ``per_class_iou.png``. With no drops, live and
offline runs with the same engine and network size give the same mIoU.

The command line is `bisestdc_ros.cli.bag_eval` (``bisestdc-bag-eval``, ``python -m
bisestdc_ros.bag_eval``); this package is the evaluation itself.

Examples::

    bisestdc-bag-eval --bag recorded_drive --mode offline --weights model.pt --out reports/drive
    bisestdc-bag-eval --bag bags/synth --mode live --weights model.pt --engine onnxruntime \\
        --replay both --reliable --out reports/live
"""

from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.live import (
    REPLAY_MODES,
    PassResult,
    replay,
    replay_offsets,
    run_live,
    wait_until,
    warm_up,
)
from bisestdc_ros.bag_eval.model_card import EvalModel, check_bag_class_set, read_model_card
from bisestdc_ros.bag_eval.node_args import configure_large_frames, node_command, replay_topic
from bisestdc_ros.bag_eval.offline import build_segmenter, run_offline
from bisestdc_ros.bag_eval.plan import DEFAULT_LABELS_TOPIC, BagPlan, inspect_bag
from bisestdc_ros.bag_eval.recorder import ReplayRecorder, to_ros_msg
from bisestdc_ros.bag_eval.render import FrameStats, render
from bisestdc_ros.bag_eval.report import build_report, report_markdown, write_report
from bisestdc_ros.bag_eval.run import MODES, evaluate
from bisestdc_ros.bag_eval.scoring import (
    PERCENTILES,
    FrameTiming,
    RunResult,
    StampMatcher,
    latency_summary,
    sheet_stamps,
)
from bisestdc_ros.bags.messages import format_stamp

__all__ = [
    "DEFAULT_LABELS_TOPIC", "MODES",
    "PERCENTILES", "REPLAY_MODES", "BagPlan", "EvalError", "FrameStats", "FrameTiming",
    "EvalModel", "PassResult", "ReplayRecorder", "RunResult", "StampMatcher",
    "build_report", "build_segmenter", "check_bag_class_set",
    "configure_large_frames", "evaluate", "format_stamp", "inspect_bag",
    "latency_summary", "node_command", "read_model_card", "render", "replay",
    "replay_offsets", "replay_topic", "report_markdown", "run_live", "run_offline",
    "sheet_stamps", "to_ros_msg",
    "wait_until", "warm_up", "write_report",
]
