"""bisestdc-bag-eval --mode live: bags replayed through a segment_node it starts.

The node runs as a subprocess on the test's private ROS domain (ros_env). With the same engine
(ONNX Runtime on CPU) and network size, the closed-loop replay gets every frame answered with
the labels the offline run computed, so the two mIoUs agree exactly whatever the machine's
load. A recorded drive without labels is inspected live, with a one-hour pause in its
recording replayed as ``--max-gap``. SIGINT and SIGTERM stop the tool and its node within 2 s.

The closed-loop test starts the node from ``--weights`` (the node exports the checkpoint
itself) and scores the offline run with the module's ONNX export of the same checkpoint; the
other tests give the node that export (``--onnx``), so it starts without torch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from segment_harness import engine_available

from bisestdc_core.data.synthetic import render_sequence
from bisestdc_ros.bags.messages import (
    CAMERA_INFO,
    IMAGE,
    NS_PER_S,
    camera_info_msg,
    header_msg,
    image_msg,
)
from bisestdc_ros.bags.writer import BagWriter
from bisestdc_ros.cli import bag_eval as bag_eval_cli
from bisestdc_ros.cli import make_bag

NETWORK_SIZE = ("128", "256")
FRAMES = 6
pytestmark = [
    pytest.mark.ros, pytest.mark.slow,
    pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available"),
]


@pytest.fixture(scope="module")
def weights(request) -> Path:
    """BISESTDC_TEST_WEIGHTS, else the committed demo checkpoint, else the session's stdc1."""
    from bisestdc_ros.demo import DEMO_WEIGHTS

    if os.environ.get("BISESTDC_TEST_WEIGHTS") or not DEMO_WEIGHTS.is_file():
        return request.getfixturevalue("test_weights")
    return DEMO_WEIGHTS


@pytest.fixture(scope="module")
def onnx(weights, tmp_path_factory) -> Path:
    """``weights`` exported once for the module at NETWORK_SIZE, as bag-eval and the node
    export them (rgb, dynamic H/W; an ONNX file's network size is fixed at export)."""
    from bisestdc_core.cli.export import main as export_main

    path = tmp_path_factory.mktemp("bag_live_onnx") / "demo.onnx"
    assert export_main(["--weights", str(weights), "--dynamic", "--network-size", *NETWORK_SIZE,
                        "--out", str(path)]) == 0
    return path


def model_args(weights: Path) -> list[str]:
    """--weights or --onnx, by the file's suffix."""
    kind = "--onnx" if weights.suffix == ".onnx" else "--weights"
    return [kind, str(weights), "--engine", "onnxruntime", "--device", "cpu",
            "--network-size", *NETWORK_SIZE]


def test_closed_loop_replay_matches_offline(ros_env, tmp_path, weights, onnx, monkeypatch):
    # The node subprocess inherits os.environ: private domain (ros_env) and an empty ONNX
    # cache, so the node exports the checkpoint itself.
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    bag = tmp_path / "bag"
    assert make_bag.main(["--source", "synthetic", "--frames", str(FRAMES), "--height", "128",
                          "--width", "256", "--rate", "2", "--out", str(bag)]) == 0
    offline_dir = tmp_path / "offline"
    assert bag_eval_cli.main(["--bag", str(bag), "--mode", "offline", "--out", str(offline_dir),
                          *model_args(onnx)]) == 0
    live_dir = tmp_path / "live"
    assert bag_eval_cli.main(["--bag", str(bag), "--mode", "live", "--out", str(live_dir),
                          "--replay", "both", "--startup-timeout", "90", "--idle-timeout", "5",
                          *model_args(weights)]) == 0

    offline = json.loads((offline_dir / "report.json").read_text())
    live = json.loads((live_dir / "report.json").read_text())
    for name in ("report.md", "overlay.mp4", "per_class_iou.png", "class_shares.png",
                 "small_objects.png", "latency_histogram.png", "latency_timeline.png",
                 "contact_sheet.png", "segment_node.log"):
        assert (live_dir / name).stat().st_size > 0, name
    # Closed loop: every frame answered and scored, the same labels as offline.
    assert live["frames_in_bag"] == live["frames_processed"] == live["frames_scored"] == FRAMES
    assert live["metrics"]["miou"] == pytest.approx(offline["metrics"]["miou"], abs=1e-9)
    assert live["metrics"]["iou"] == pytest.approx(offline["metrics"]["iou"], abs=1e-9)
    # What ran, as the node reported it, and the size it was given.
    assert live["engine"]["engine"] == "onnxruntime"
    assert live["engine"]["precision"] == "fp32" and live["engine"]["device"] == "cpu"
    assert live["engine"]["network_size"] == [int(v) for v in NETWORK_SIZE]
    assert live["engine"]["mean"] == offline["engine"]["mean"] is not None
    # Real-time pass: latency and drops of a real deployment.
    details = live["details"]
    assert details["scores_from"] == "closed-loop pass"
    assert details["latency_pass"] == "realtime pass"
    assert details["closed-loop_pass"] == f"{FRAMES} answered, 0 dropped"
    latency = live["latency_ms"]
    answered = FRAMES - live["frames_dropped"]
    assert latency["end_to_end_ms"]["count"] == answered > 0
    assert latency["end_to_end_ms"]["p50"] >= latency["inference_ms"]["p50"] > 0
    assert details["node_started_by_tool"] is True


def recorded_drive(path: Path, frames: int, pause_after: int, pause_s: float,
                   broken: int, rate: float = 5.0) -> None:
    """A camera-only recording (no labels, no class set) with a pause in the middle and one
    frame whose data was cut short."""
    start = 1_700_000_000 * NS_PER_S
    with BagWriter(path) as bag:
        bag.add_topic("/drive/image_raw", IMAGE)
        bag.add_topic("/drive/camera_info", CAMERA_INFO)
        t = start
        for i, (rgb, _) in enumerate(render_sequence(5, frames, 128, 256)):
            header = header_msg(t, "front")
            msg = image_msg(rgb, "rgb8", header)
            if i == broken:
                msg.data = msg.data[:100]
            bag.write("/drive/image_raw", msg, t)
            bag.write("/drive/camera_info", camera_info_msg(128, 256, header), t)
            t += round((pause_s if i == pause_after else 1.0 / rate) * NS_PER_S)


def test_live_inspects_a_drive_with_a_pause(ros_env, tmp_path, onnx, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    bag = tmp_path / "drive"
    recorded_drive(bag, frames=5, pause_after=2, pause_s=3600.0, broken=4)  # an hour parked
    out = tmp_path / "live"
    started = time.monotonic()
    assert bag_eval_cli.main(["--bag", str(bag), "--mode", "live", "--out", str(out),
                          "--max-gap", "0.5", "--reliable", "--startup-timeout", "90",
                          "--idle-timeout", "5", *model_args(onnx)]) == 0
    assert time.monotonic() - started < 600  # far from the hour in the recording
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"] is None and report["frames_in_bag"] == 5
    assert report["details"]["max_gap_s"] == 0.5
    assert report["details"]["replay_duration_s"] < 5.0  # 4 gaps: 0.2 + 0.5 + 0.2 + 0.2 s
    # The broken frame is not sent, so not a drop: counted and named instead.
    assert report["frames_bad"] == 1 and "topic /drive/image_raw" in report["bad_frames"][0]
    assert report["frames_processed"] + report["frames_dropped"] == 4
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 4  # dropped frames are shown dimmed
    video.release()
    for name in ("class_shares.png", "small_objects.png", "contact_sheet.png"):
        assert (out / name).stat().st_size > 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: only its parent's wait is missing.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_bag_eval_and_its_node(ros_env, tmp_path, onnx, signum):
    env = dict(ros_env, BISESTDC_CACHE_DIR=str(tmp_path / "cache"))
    bag = tmp_path / "bag"
    # 0.2 Hz: the replay spends its time sleeping between frames when the signal comes.
    assert make_bag.main(["--source", "synthetic", "--frames", "4", "--height", "64",
                          "--width", "128", "--rate", "0.2", "--no-labels",
                          "--out", str(bag)]) == 0
    log_path = tmp_path / "bag_eval.log"
    with open(log_path, "wb") as log_file:
        tool = subprocess.Popen(
            [sys.executable, "-m", "bisestdc_ros.bag_eval", "--bag", str(bag), "--mode", "live",
             "--out", str(tmp_path / "out"), "--startup-timeout", "90", *model_args(onnx)],
            env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        text = ""
        while "answered the warm-up frame" not in text:
            assert tool.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "bag-eval never reached the replay"
            time.sleep(0.2)
            text = log_path.read_text(errors="replace")
        node_pid = int(re.search(r"segment_node started \(pid (\d+)\)", text).group(1))
        time.sleep(1.0)  # inside the 5 s sleep before the second frame
        sent = time.monotonic()
        tool.send_signal(signum)
        code = tool.wait(timeout=10)
        took = time.monotonic() - sent
        node_gone = not pid_alive(node_pid)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert code == 130, log_path.read_text()
    assert took < 2.0, f"bag-eval took {took:.2f} s to stop"
    assert node_gone, "segment_node survived bag-eval"
    assert "interrupted" in log_path.read_text()
