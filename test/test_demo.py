"""The demo's pipeline (bag -> live node -> report) at a reduced size, with the committed
demo checkpoint."""

import json

import pytest

from bisestdc_ros import demo


@pytest.mark.ros
@pytest.mark.slow
def test_demo_pipeline_reduced(ros_env, tmp_path, capsys):
    assert demo.DEMO_WEIGHTS.is_file(), "the demo checkpoint is committed with the repository"
    code = demo.main(["--out", str(tmp_path), "--frames", "6", "--rate", "2", "--seed", "11"])
    assert code == 0
    printed = capsys.readouterr().out
    for step in ("[1/3]", "[2/3]", "[3/3]", "mIoU", "small-object mIoU", "contact_sheet.png"):
        assert step in printed
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["mode"] == "live" and report["frames_in_bag"] == 6
    assert report["frames_scored"] >= 4
    # The committed checkpoint really segments unseen synthetic streets.
    assert report["metrics"]["miou"] > 0.4
    for name in ("report.md", "per_class_iou.png", "latency_histogram.png", "contact_sheet.png"):
        assert (tmp_path / "report" / name).is_file()
