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

from bisestdc_core.cli import export
from bisestdc_core.inference import calibration_data
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.segmenter import Segmenter
from bisestdc_core.inference.tensorrt import build, calibration, platform
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_ros.bags import calibration_frames as bag_calibration
from bisestdc_ros.cli import make_bag

TOPIC = "/camera/image_raw"


@pytest.fixture(scope="module")
def calib_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bag") / "calib"
    assert make_bag.main(["--source", "synthetic", "--frames", "3", "--height", "64",
                          "--width", "128", "--out", str(path)]) == 0
    return path


@pytest.fixture(autouse=True)
def rosbag_reader(monkeypatch):
    """The bag reader the ROS package registers in the core's entry-point group."""
    monkeypatch.setattr(calibration_data, "_bag_readers", [bag_calibration.RosbagFrames()])


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
    # ... and no installed one either (bisestdc_ros registers its reader as an entry point)
    monkeypatch.setattr(calibration_data, "entry_points", lambda group: [])
    with pytest.raises(ValueError, match="calibration frames from a bag need a bag reader "
                                         r"\(installed with bisestdc_ros"):
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

def test_int8_mode_qdq_by_default(onnx_file, qdq_file, image_dir, tmp_path):
    """The TensorRT 10 way by default: a QDQ graph as given, or one to make from the frames."""
    assert calibration.int8_mode(qdq_file, None, None) == "qdq"
    source = CalibrationSource(images=image_dir)
    assert calibration.int8_mode(onnx_file, source, None) == "quantize"
    assert calibration.int8_mode(None, None, None) == "quantize"  # weights: generated scenes
    cache = tmp_path / "m.calib"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    with pytest.raises(ValueError, match=r"plain.onnx needs a calibration source .*\(QDQ\) "
                                         r"ONNX.*calibration cache serves only "
                                         r"int8_calibration implicit"):
        calibration.int8_mode(onnx_file, None, cache)


def test_int8_mode_implicit_only_when_asked(onnx_file, qdq_file, image_dir, tmp_path):
    source = CalibrationSource(images=image_dir)
    assert calibration.int8_mode(qdq_file, None, None, "implicit") == "qdq"
    assert calibration.int8_mode(onnx_file, source, None, "implicit") == "calibrate"
    cache = tmp_path / "m.calib"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    assert calibration.int8_mode(onnx_file, None, cache, "implicit") == "cache"
    with pytest.raises(ValueError, match=r"needs a calibration source .* \(no calibration "
                                         r"cache at .*absent.calib\)"):
        calibration.int8_mode(onnx_file, CalibrationSource(), tmp_path / "absent.calib",
                              "implicit")
    with pytest.raises(ValueError, match="int8 from the exported weights needs"):
        calibration.int8_mode(None, None, None, "implicit")


def test_int8_scales_name_their_source(qdq_file, onnx_file, image_dir, tmp_path):
    explicit = calibration.int8_scales("qdq", qdq_file, None, None)
    assert explicit["quantization"] == "explicit" and len(explicit["qdq_sha256"]) == 64
    implicit = calibration.int8_scales("calibrate", onnx_file,
                                       CalibrationSource(images=image_dir, count=7), None)
    assert implicit == {"quantization": "implicit",
                        "source": {"images": str(image_dir), "count": 7}}
    cache = tmp_path / "m.calib"
    cache.write_bytes(b"scales")
    assert calibration.int8_scales("cache", onnx_file, None, cache)[
        "calibration_cache_sha256"] != calibration.int8_scales("qdq", qdq_file, None, None)[
        "qdq_sha256"]
    with pytest.raises(ValueError, match="quantize the graph first"):
        calibration.int8_scales("quantize", onnx_file, None, None)


def test_ensure_engine_checks_int8_inputs_before_tensorrt(onnx_file, image_dir, tmp_path):
    """Here TensorRT is missing: the int8 errors coming first shows they are checked before
    TensorRT (and the builder) is reached."""
    with pytest.raises(ValueError, match="calibration image folder not found"):
        build.ensure_engine(onnx_file, tmp_path / "m.engine", "int8",
                            calibration=CalibrationSource(images=tmp_path / "nothing"))
    with pytest.raises(ValueError, match=r"needs a calibration source .*m\.[0-9a-f]{16}\.calib"):
        build.ensure_engine(onnx_file, tmp_path / "m.engine", "int8",
                            options=TensorRTOptions(int8_calibration="implicit"))
    # qdq (default): a float graph is refused by the builder; the factory quantizes it first
    with pytest.raises(ValueError, match="plain.onnx is a float graph"):
        build.ensure_engine(onnx_file, tmp_path / "m.engine", "int8",
                            calibration=CalibrationSource(images=image_dir))


def _frames_then_failure():
    yield np.zeros((1, 4, 4, 3), np.uint8)
    yield np.ones((1, 4, 4, 3), np.uint8)
    raise OSError("calibration disk went away")


def test_calibration_feed_keeps_the_error_for_after_the_build(tmp_path):
    uploads = []

    def upload(frame):
        uploads.append(frame.copy())
        return 4096 + len(uploads)

    feed = calibration.CalibrationFeed(_frames_then_failure(), upload, tmp_path / "m.calib")
    assert feed.next_batch() == [4097]
    assert feed.next_batch() == [4098]
    assert feed.next_batch() is None  # the OSError ends calibration instead of escaping
    assert isinstance(feed.error, OSError) and "disk went away" in str(feed.error)
    assert feed.next_batch() is None and feed.used == 2 and len(uploads) == 2


def test_calibration_feed_without_frames_names_the_cache(tmp_path):
    feed = calibration.CalibrationFeed(iter(()), lambda frame: 0, tmp_path / "m.calib")
    assert feed.next_batch() is None
    assert "calibration cache" in str(feed.error) and "m.calib" in str(feed.error)


def test_calibration_frames_match_engine_input(image_dir):
    frames = list(calibration.calibration_frames((1, 32, 64, 3), "bgr",
                                        CalibrationSource(images=image_dir, count=1)))
    assert len(frames) == 1 and frames[0].shape == (1, 32, 64, 3)
    assert list(calibration.calibration_frames((1, 32, 64, 3), "rgb", None)) == []


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
    ok, _ = platform.tensorrt_available()
    if ok:
        pytest.skip("TensorRT is installed here: this would build an engine")
    with pytest.raises(ValueError, match="calibration cache serves only int8_calibration"):
        Segmenter(onnx=onnx_file, precision="int8", calib_cache=cache)
    # past the int8 check, the engine choice says why nothing runs int8 here
    with pytest.raises(RuntimeError,
                       match="no usable inference engine .*onnxruntime: plain.onnx is an fp32"):
        Segmenter(onnx=onnx_file, precision="int8", calib_cache=cache,
                  tensorrt_options=TensorRTOptions(int8_calibration="implicit"))


def test_cli_refuses_a_bad_calibration_source_before_exporting(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code = export.main(["--model", "stdc1", "--network-size", "64", "128", "--out", str(out),
                        "--tensorrt", "--precision", "int8", "--calib-images",
                        str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert re.match(r"error: .*calibration image folder not found: .*missing", err[0]), err
    assert not out.exists()
