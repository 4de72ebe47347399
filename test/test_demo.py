"""The demo's pipeline (bag -> live node -> report) at a reduced size, with the committed
demo checkpoint: the scores come from the closed-loop pass, so they equal an offline evaluation
of the demo's bag with the same checkpoint and engine, whatever the run."""

import json

import pytest

from bisestdc_ros import demo
from bisestdc_ros.cli import bag_eval as bag_eval_cli


@pytest.mark.ros
@pytest.mark.slow
def test_demo_pipeline_reduced(ros_env, tmp_path, capsys, monkeypatch):
    assert demo.DEMO_WEIGHTS.is_file(), "the demo checkpoint is committed with the repository"
    # The node (a subprocess: it inherits os.environ) exports into the test's cache, not ~/.cache.
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    code = demo.main(["--out", str(out), "--frames", "6", "--rate", "2", "--seed", "11"])
    assert code == 0
    printed = capsys.readouterr().out
    for step in ("[1/3]", "[2/3]", "[3/3]", "mIoU", "small-object mIoU", "overlay.mp4",
                 "contact_sheet.png", "class_shares.png", "latency_histogram.png"):
        assert step in printed
    # The demo ends with what a person opens: the video and the plots.
    assert printed.rstrip().splitlines()[-1].strip().endswith("latency_timeline.png")
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["mode"] == "live" and report["frames_in_bag"] == 6
    assert report["frames_scored"] == 6  # closed loop: every frame, whatever the load
    for name in ("report.md", "overlay.mp4", "per_class_iou.png", "class_shares.png",
                 "small_objects.png", "latency_histogram.png", "contact_sheet.png"):
        assert (out / "report" / name).stat().st_size > 0, name
    # The committed checkpoint really segments unseen synthetic streets ...
    assert report["metrics"]["miou"] > 0.4
    # ... and the scores do not depend on the run: the live node's closed-loop scores are those
    # of an offline pass over the demo's own bag (same checkpoint, engine and network size).
    engine = report["engine"]
    offline_dir = tmp_path / "offline"
    assert bag_eval_cli.main(["--bag", str(out / "drive_bag"), "--mode", "offline",
                              "--weights", str(demo.DEMO_WEIGHTS), "--engine", engine["engine"],
                              "--device", engine["device"], "--out", str(offline_dir)]) == 0
    offline = json.loads((offline_dir / "report.json").read_text())
    assert offline["engine"]["network_size"] == engine["network_size"]
    assert offline["frames_scored"] == 6
    assert offline["metrics"] == report["metrics"]
