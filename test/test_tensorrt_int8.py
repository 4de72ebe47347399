"""int8 inputs fail early and clearly: calibration sources are validated before any engine
build, the calibrator's frame errors are kept for after the build, and int8 with no source of
scales is refused at start (Segmenter and CLI). All of it runs without TensorRT."""

from __future__ import annotations

import re

import cv2
import numpy as np
import onnx
import pytest
from onnx_graphs import qdq_model

from bisestdc_core import export
from bisestdc_core.inference import calibration_data
from bisestdc_core.inference import tensorrt_engine as te
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.segmenter import Segmenter
from bisestdc_ros import bag_calibration, make_bag

TOPIC = "/camera/image_raw"


@pytest.fixture(scope="module")
def calib_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bag") / "calib"
    assert make_bag.main(["--source", "synthetic", "--frames", "3", "--height", "64",
                          "--width", "128", "--out", str(path)]) == 0
    return path


@pytest.fixture(autouse=True)
def rosbag_reader(monkeypatch):
    """The bag reader registered as bisestdc-export and bisestdc-quantize register it."""
    monkeypatch.setattr(calibration_data, "_bag_readers", [])
    bag_calibration.register()


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (40, 60, 3), np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return tmp_path / "images"


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """A real export (tiny network) to build int8 engines from."""
    from export_reference import VARIANTS, export_variant, seeded_network

    path = tmp_path_factory.mktemp("onnx") / "plain.onnx"
    export_variant(seeded_network(), path, VARIANTS["plain"])
    return path


@pytest.fixture(scope="module")
def qdq_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("qdq") / "qdq.onnx"
    onnx.save(qdq_model(), str(path))
    return path


# ---- sources --------------------------------------------------------------------------------

def test_folder_source_yields_rgb_frames_up_to_count(image_dir):
    source = CalibrationSource(images=image_dir, count=2)
    source.validate()
    frames = list(source.frames())
    assert len(frames) == 2 and frames[0].shape == (40, 60, 3) and frames[0].dtype == np.uint8


def test_bag_source_validates_and_yields_frames(calib_bag):
    source = CalibrationSource(bag=calib_bag, topic=TOPIC, count=5)
    source.validate()
    frames = list(source.frames())
    assert len(frames) == 3 and frames[0].shape == (64, 128, 3)


def test_bag_source_needs_the_ros_side_reader(calib_bag, monkeypatch):
    """The core reads no bags itself: without the registered reader it says where one is."""
    monkeypatch.setattr(calibration_data, "_bag_readers", [])
    with pytest.raises(ValueError, match="need the ROS tools' bag reader: run bisestdc-quantize"):
        CalibrationSource(bag=calib_bag, topic=TOPIC, count=5).validate()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs an image folder or a bag and topic"),
    ({"images": "IMG", "bag": "BAG"}, "not both"),
    ({"topic": "/t"}, "calibration topic /t given without a bag"),
    ({"bag": "BAG"}, "calibration bag .*calib needs an image topic"),
    ({"images": "MISSING"}, "calibration image folder not found: .*missing"),
    ({"images": "EMPTY"}, "no images .* under .*empty"),
    ({"bag": "MISSINGBAG", "topic": TOPIC}, "bag not found: .*nobag"),
    ({"bag": "BAG", "topic": "/cam/none"}, r"topic /cam/none not in bag .*/camera/image_raw"),
    ({"bag": "BAG", "topic": "/camera/camera_info"}, "has type .*CameraInfo, expected"),
    ({"images": "IMG", "count": 0}, "count must be at least 1"),
])
def test_invalid_sources_are_named(kwargs, message, tmp_path, calib_bag, image_dir):
    (tmp_path / "empty").mkdir()
    paths = {"IMG": image_dir, "BAG": calib_bag, "MISSING": tmp_path / "missing",
             "EMPTY": tmp_path / "empty", "MISSINGBAG": tmp_path / "nobag"}
    kwargs = {k: paths.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=message):
        CalibrationSource(**kwargs).validate()


# ---- how an int8 engine gets its scales -----------------------------------------------------

def test_int8_mode(onnx_file, qdq_file, image_dir, tmp_path):
    assert te.int8_mode(qdq_file, None, None) == "qdq"
    assert te.int8_mode(onnx_file, CalibrationSource(images=image_dir), None) == "calibrate"
    cache = tmp_path / "m.calib"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    assert te.int8_mode(onnx_file, None, cache) == "cache"
    with pytest.raises(ValueError, match=r"needs a calibration source .* \(no calibration "
                                         r"cache at .*absent.calib\)"):
        te.int8_mode(onnx_file, CalibrationSource(), tmp_path / "absent.calib")
    with pytest.raises(ValueError, match="int8 from the exported weights needs"):
        te.int8_mode(None, None, None)


def test_ensure_engine_checks_int8_inputs_before_tensorrt(onnx_file, tmp_path):
    """Here TensorRT is missing: the int8 errors coming first shows they are checked before
    TensorRT (and the builder) is reached."""
    with pytest.raises(ValueError, match="calibration image folder not found"):
        te.ensure_engine(onnx_file, tmp_path / "m.engine", "int8",
                         calibration=CalibrationSource(images=tmp_path / "nothing"))
    with pytest.raises(ValueError, match=r"needs a calibration source .*m\.[0-9a-f]{16}\.calib"):
        te.ensure_engine(onnx_file, tmp_path / "m.engine", "int8")


def _frames_then_failure():
    yield np.zeros((1, 4, 4, 3), np.uint8)
    yield np.ones((1, 4, 4, 3), np.uint8)
    raise OSError("calibration disk went away")


def test_calibration_feed_keeps_the_error_for_after_the_build(tmp_path):
    uploads = []

    def upload(frame):
        uploads.append(frame.copy())
        return 4096 + len(uploads)

    feed = te.CalibrationFeed(_frames_then_failure(), upload, tmp_path / "m.calib")
    assert feed.next_batch() == [4097]
    assert feed.next_batch() == [4098]
    assert feed.next_batch() is None  # the OSError ends calibration instead of escaping
    assert isinstance(feed.error, OSError) and "disk went away" in str(feed.error)
    assert feed.next_batch() is None and feed.used == 2 and len(uploads) == 2


def test_calibration_feed_without_frames_names_the_cache(tmp_path):
    feed = te.CalibrationFeed(iter(()), lambda frame: 0, tmp_path / "m.calib")
    assert feed.next_batch() is None
    assert "calibration cache" in str(feed.error) and "m.calib" in str(feed.error)


def test_calibration_frames_match_engine_input(image_dir):
    frames = list(te.calibration_frames((1, 32, 64, 3), "bgr",
                                        CalibrationSource(images=image_dir, count=1)))
    assert len(frames) == 1 and frames[0].shape == (1, 32, 64, 3)
    assert list(te.calibration_frames((1, 32, 64, 3), "rgb", None)) == []


# ---- refused at start -----------------------------------------------------------------------

def test_segmenter_refuses_int8_without_scales(onnx_file, tmp_path):
    with pytest.raises(ValueError, match="int8 from .*plain.onnx needs a calibration source"):
        Segmenter(onnx=onnx_file, precision="int8")
    with pytest.raises(ValueError, match="calibration image folder not found: .*nowhere"):
        Segmenter(onnx=onnx_file, precision="int8",
                  calibration=CalibrationSource(images=tmp_path / "nowhere"))


def test_segmenter_int8_with_a_cache_gets_past_the_check(onnx_file, tmp_path):
    cache = tmp_path / "m.calib"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    ok, _ = te.tensorrt_available()
    if ok:
        pytest.skip("TensorRT is installed here: this would build an engine")
    # past the int8 check, the engine choice says why nothing runs int8 here
    with pytest.raises(RuntimeError,
                       match="no usable inference engine .*onnxruntime: plain.onnx is an fp32"):
        Segmenter(onnx=onnx_file, precision="int8", calib_cache=cache)


def test_cli_refuses_a_bad_calibration_source_before_exporting(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = export.main(["--model", "stdc1", "--network-size", "64", "128", "--out", str(out),
                        "--tensorrt", "--precision", "int8", "--calib-images",
                        str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert re.match(r"error: .*calibration image folder not found: .*missing", err[0]), err
    assert not out.exists()
