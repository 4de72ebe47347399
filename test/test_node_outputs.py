"""The output table, the stage timings and the /diagnostics window, without a running node."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from bisestdc_core.small_objects import SmallObject
from bisestdc_core.stage_timings import STAGE_LABELS, STAGES, StageTimings
from bisestdc_ros.bag_eval.figures import PLOTTED_STAGES
from bisestdc_ros.node.config import DYNAMIC, PARAMETERS, output_topics, validate
from bisestdc_ros.node.diagnostics import DiagnosticsWindow
from bisestdc_ros.node.outputs import OUTPUT_PARAMETERS, OUTPUTS, FrameProducts


def test_the_table_is_the_only_definition_of_outputs_and_their_switches():
    names = [o.name for o in OUTPUTS]
    assert len(set(names)) == len(names)
    assert list(output_topics("/cam/image_raw")) == names
    publish = {p.name: p for p in PARAMETERS if p.name.startswith("publish_")}
    assert set(publish) == set(OUTPUT_PARAMETERS)
    for name, output in OUTPUT_PARAMETERS.items():
        assert publish[name].default is output.default
        assert publish[name].description == output.description
        assert name in DYNAMIC
    switched_off = validate({o.parameter: False for o in OUTPUT_PARAMETERS.values()})
    assert switched_off.enabled_outputs == {o.name for o in OUTPUTS if o.parameter is None}
    with pytest.raises(ValueError, match="publish_color must be true or false"):
        validate({"publish_color": 1})


def test_latency_message_keys_are_the_stage_timings_fields():
    timings = StageTimings(decode_ms=1.0, inference_ms=2.5, end_to_end_ms=-1.0)
    frame = FrameProducts(
        header=Header(frame_id="cam"), labels=np.zeros((2, 2), np.uint8),
        objects=[SmallObject(5, (0, 0, 1, 1), 1, class_name="pole")] * 2,
        small_object_classes=("pole", "traffic sign"), source="node: cam", camera_topic="cam",
        timings=timings, counters={"drops": 3, "input_errors": 0, "dds_lost": 1},
    )
    latency = next(o for o in OUTPUTS if o.name == "latency")
    msg = latency.build(frame)
    (status,) = msg.status
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "cam"
    values = {kv.key: kv.value for kv in status.values}
    assert values == {"decode_ms": "1.000", "inference_ms": "2.500", "end_to_end_ms": "-1.000",
                      "drops": "3", "input_errors": "0", "dds_lost": "1",
                      "small_objects/pole": "2", "small_objects/traffic sign": "0"}
    # What the bag evaluation reads back is the same structure.
    assert StageTimings.from_values({k: float(v) for k, v in values.items()}) == timings


def test_stage_vocabulary_is_shared_by_the_plots():
    assert set(PLOTTED_STAGES) <= set(STAGES) == set(STAGE_LABELS)
    assert StageTimings().measured() == {}


def test_diagnostics_window_counts_and_restarts():
    now = [100.0]
    window = DiagnosticsWindow(latency_samples=3, clock=lambda: now[0])
    for latency_ms in (10.0, 20.0, 30.0, 40.0):  # the first falls out of the 3 kept
        window.frame_done(latency_ms)
    window.input_error()
    window.engine_error("boom")
    now[0] = 102.0
    stats = window.close()
    assert (stats.frames, stats.input_errors, stats.engine_errors) == (4, 1, 1)
    assert stats.rate_hz == pytest.approx(2.0)
    assert stats.latency_samples == 3 and stats.latency_p50_ms == pytest.approx(30.0)
    assert stats.last_engine_error == "boom"
    now[0] = 103.0
    stats = window.close()
    assert (stats.frames, stats.input_errors, stats.engine_errors) == (0, 0, 0)
    assert stats.engine_errors_total == 1 and stats.latency_samples == 3


def test_array_backed_images_are_published_as_they_are():
    from bisestdc_ros.node.image_codec import array_backed, bgr_to_image_msg, byte_array

    image = array_backed((3, 4, 3))
    image[:] = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
    assert bytes(bgr_to_image_msg(image).data) == image.tobytes()
    assert byte_array(image) is byte_array(image)  # the buffer itself, no copy
    part = image[1:]  # a view of part of it must be copied, not handed over whole
    assert bytes(byte_array(part)) == part.tobytes()


def test_output_and_stage_names_are_listed_only_in_their_tables():
    """No second literal list of the outputs' publish_* parameters or of stage names in the
    packages (the plots choose and order stages from the vocabulary, checked above). Output
    names alone are too common a word ("labels", "confidence" are also the exported graph's
    outputs) to scan for."""
    from test_registries import PACKAGES, REPO, name_lists

    vocabularies = {
        "outputs": (set(OUTPUT_PARAMETERS), {"bisestdc_ros/node/outputs.py"}),
        "stages": (set(STAGES), {"bisestdc_core/stage_timings.py",
                                 "bisestdc_ros/bag_eval/figures.py"}),
    }
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for vocabulary, definers in vocabularies.values():
                if relative not in definers:
                    found += [f"{relative}:{line}"
                              for line in name_lists(path.read_text(), vocabulary)]
    assert found == []
