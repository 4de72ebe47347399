"""bisestdc-bag-eval --mode live: a synthetic bag replayed through a segment_node it starts.

The node runs as a subprocess on the test's private ROS domain (ros_env). With the same engine
(ONNX Runtime on CPU) and network size, every frame that comes back carries the labels the
offline run computed, so with no drops the two mIoUs agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from segment_harness import engine_available

from bisestdc_ros import bag_eval, make_bag

NETWORK_SIZE = ("128", "256")
FRAMES = 6


@pytest.fixture(scope="module")
def weights(request) -> Path:
    """BISESTDC_TEST_WEIGHTS, else the committed demo checkpoint, else the session's stdc1."""
    from bisestdc_ros.demo import DEMO_WEIGHTS

    if os.environ.get("BISESTDC_TEST_WEIGHTS") or not DEMO_WEIGHTS.is_file():
        return request.getfixturevalue("test_weights")
    return DEMO_WEIGHTS


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available")
def test_live_replay_matches_offline(ros_env, tmp_path, weights, monkeypatch):
    # The node subprocess inherits os.environ: private domain (ros_env) and ONNX cache.
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    bag = tmp_path / "bag"
    assert make_bag.main(["--source", "synthetic", "--frames", str(FRAMES), "--height", "128",
                          "--width", "256", "--rate", "2", "--out", str(bag)]) == 0
    model = ["--weights", str(weights), "--engine", "onnxruntime", "--device", "cpu",
             "--network-size", *NETWORK_SIZE]

    offline_dir = tmp_path / "offline"
    assert bag_eval.main(["--bag", str(bag), "--mode", "offline", "--out", str(offline_dir),
                          *model]) == 0
    live_dir = tmp_path / "live"
    assert bag_eval.main(["--bag", str(bag), "--mode", "live", "--out", str(live_dir),
                          "--startup-timeout", "60", "--idle-timeout", "5", *model]) == 0

    offline = json.loads((offline_dir / "report.json").read_text())
    live = json.loads((live_dir / "report.json").read_text())
    for name in ("report.md", "per_class_iou.png", "latency_histogram.png",
                 "latency_timeline.png", "contact_sheet.png", "segment_node.log"):
        assert (live_dir / name).stat().st_size > 0, name
    assert live["frames_in_bag"] == FRAMES
    assert live["frames_processed"] > 0
    assert live["frames_processed"] + live["frames_dropped"] == FRAMES
    assert live["frames_scored"] == live["frames_processed"]
    assert f"{live['frames_scored']} scored" in (live_dir / "report.md").read_text()
    latency = live["latency_ms"]
    assert latency["end_to_end_ms"]["count"] == live["frames_processed"]
    assert latency["inference_ms"]["p50"] > 0
    assert latency["end_to_end_ms"]["p50"] >= latency["inference_ms"]["p50"]
    assert live["details"]["node_started_by_tool"] is True
    if live["frames_dropped"] == 0:
        assert live["metrics"]["miou"] == pytest.approx(offline["metrics"]["miou"], abs=1e-6)
        assert live["metrics"]["iou"] == pytest.approx(offline["metrics"]["iou"], abs=1e-6)
