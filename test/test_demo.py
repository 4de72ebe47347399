"""The demo's pipeline (bag -> live node -> report) at a reduced size, with the committed
demo checkpoint: the scores come from the closed-loop pass, so two runs agree exactly."""

import json

import pytest

from bisestdc_ros import demo


@pytest.mark.ros
@pytest.mark.slow
def test_demo_pipeline_reduced(ros_env, tmp_path, capsys):
    assert demo.DEMO_WEIGHTS.is_file(), "the demo checkpoint is committed with the repository"
    reports = []
    for run in ("first", "second"):
        out = tmp_path / run
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
        reports.append(report)
    # The committed checkpoint really segments unseen synthetic streets ...
    assert reports[0]["metrics"]["miou"] > 0.4
    # ... and the scores do not depend on the run.
    assert reports[0]["metrics"] == reports[1]["metrics"]
