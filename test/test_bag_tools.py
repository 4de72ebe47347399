"""bisestdc-make-bag and bisestdc-bag-eval (offline mode) on bags written in tmp.

Bags are read back with rosbags (what `ros2 bag` would replay): message counts, stamps shared by
image, camera info and labels, bag timestamps equal to the stamps, labels byte-identical to the
source. The evaluator must refuse unusable bags before any inference work, and its offline mIoU
must equal a direct ConfusionMatrix computation over the same frames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from bisestdc_core.classes import CITYSCAPES, IGNORE_INDEX
from bisestdc_core.data.synthetic import render_sequence, write_dataset
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_core.inference.model_files import describe
from bisestdc_ros import bag_eval
from bisestdc_ros.bags.messages import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    NS_PER_S,
    frame_from_msg,
    header_msg,
    image_msg,
    labels_from_msg,
    labels_msg,
    stamp_ns,
)
from bisestdc_ros.bags.reader import BagReader
from bisestdc_ros.bags.writer import BagWriter
from bisestdc_ros.cli import bag_eval as bag_eval_cli
from bisestdc_ros.cli import make_bag
from bisestdc_ros.node import process as node_process

H, W = 64, 128
NETWORK_SIZE = ("128", "256")
START = 1_700_000_000.0
RATE = 5.0


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def weights(test_weights) -> Path:
    return test_weights


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory) -> Path:
    """The session's ONNX export cache folder, never the user's ~/.cache."""
    return tmp_path_factory.getbasetemp() / "bisestdc_cache"


@pytest.fixture
def onnx_cache(onnx_cache_dir, monkeypatch) -> Path:
    """``onnx_cache_dir`` as the cache of this test (and the processes it starts)."""
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(onnx_cache_dir))
    return onnx_cache_dir


def synthetic_bag(path: Path, *extra: str, frames: int = 3) -> Path:
    code = make_bag.main(["--source", "synthetic", "--frames", str(frames), "--height", str(H),
                          "--width", str(W), "--rate", str(RATE), "--start", str(START),
                          "--out", str(path), *extra])
    assert code == 0
    return path


def read_all(path: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(bag timestamp, message)] in bag order."""
    out: dict[str, list[tuple[int, object]]] = {}
    with BagReader(path) as bag:
        for topic, timestamp, msg in bag.messages(bag.topics):
            out.setdefault(topic, []).append((timestamp, msg))
    return out


def check_stamps(messages: dict[str, list[tuple[int, object]]], frames: int) -> None:
    expected = [round(START * NS_PER_S) + round(i * NS_PER_S / RATE) for i in range(frames)]
    for topic, items in messages.items():
        assert [t for t, _ in items] == expected, topic  # bag time == stamp == start + i / rate
        assert [stamp_ns(m) for _, m in items] == expected, topic
        assert all(m.header.frame_id == "camera" for _, m in items)


# --- make_bag ---------------------------------------------------------------------------------


@pytest.mark.parametrize("storage,image_format,compression,encoding", [
    ("sqlite3", "raw", "none", "bgr8"),
    ("mcap", "raw", "file", "rgb8"),
    ("sqlite3", "png", "file", "bgr8"),
    ("sqlite3", "jpeg", "message", "bgr8"),
    ("mcap", "jpeg", "none", "bgr8"),
])
def test_synthetic_bag_round_trip(tmp_path, storage, image_format, compression, encoding):
    bag = synthetic_bag(tmp_path / "bag", "--storage", storage, "--image-format", image_format,
                        "--compression", compression, "--encoding", encoding)
    image_topic = "/camera/image_raw" + ("" if image_format == "raw" else "/compressed")
    with BagReader(bag) as reader:
        assert reader.class_set == "cityscapes"  # recorded for bag-eval's class-set check
        assert reader.topics == {
            image_topic: IMAGE if image_format == "raw" else COMPRESSED_IMAGE,
            "/camera/camera_info": CAMERA_INFO,
            "/camera/labels_gt": IMAGE,
        }
        assert reader.image_topic(None) == image_topic
    messages = read_all(bag)
    check_stamps(messages, 3)
    source = list(render_sequence(0, 3, H, W))
    for (_, image), (_, labels), (_, info), (rgb, truth) in zip(
            messages[image_topic], messages["/camera/labels_gt"],
            messages["/camera/camera_info"], source):
        assert labels.encoding == "mono8"
        np.testing.assert_array_equal(labels_from_msg(labels, IMAGE), truth)
        frame, order = frame_from_msg(image, IMAGE if image_format == "raw" else COMPRESSED_IMAGE)
        as_rgb = frame if order == "rgb" else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if image_format == "jpeg":
            assert np.abs(as_rgb.astype(int) - rgb).mean() < 8  # lossy, but the same picture
        else:
            np.testing.assert_array_equal(as_rgb, rgb)
        if image_format == "raw":
            assert image.encoding == encoding
        assert (info.height, info.width) == (H, W)
        k = np.asarray(info.k).reshape(3, 3)
        assert k[0, 0] > 0 and k[0, 0] == k[1, 1] and k[2, 2] == 1
        assert abs(k[0, 2] - (W - 1) / 2) < 1e-9 and abs(k[1, 2] - (H - 1) / 2) < 1e-9


def test_mcap_with_per_message_compression_is_refused(tmp_path, capsys):
    code = make_bag.main(["--source", "synthetic", "--frames", "1", "--height", "8",
                          "--width", "16", "--storage", "mcap", "--compression", "message",
                          "--out", str(tmp_path / "bag")])
    assert code == 2  # the one error boundary: one line on stderr, exit 2
    err = capsys.readouterr().err
    assert "error: " in err and "mcap storage does not take per-message compression" in err
    assert not (tmp_path / "bag").exists()


def test_folder_bag_with_labels_and_custom_topics(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    truth = []
    for i in range(3):
        rgb = rng.integers(0, 256, (H, W, 3), np.uint8)
        label = rng.integers(0, 11, (H, W), np.uint8)
        label[:4] = IGNORE_INDEX
        cv2.imwrite(str(images / f"f{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(labels / f"f{i:02d}.png"), label)
        truth.append((rgb, label))
    code = make_bag.main(["--source", "folder", "--root", str(images), "--label-dir",
                          str(labels), "--out", str(tmp_path / "bag"), "--rate", str(RATE),
                          "--start", str(START), "--image-topic", "/front/image",
                          "--labels-topic", "/front/gt", "--storage", "mcap",
                          "--class-set", "camvid"])
    assert code == 0
    with BagReader(tmp_path / "bag") as reader:
        assert reader.class_set == "camvid"
    messages = read_all(tmp_path / "bag")
    assert set(messages) == {"/front/image", "/front/camera_info", "/front/gt"}
    check_stamps(messages, 3)
    for (_, image), (_, label), (rgb, expected) in zip(messages["/front/image"],
                                                      messages["/front/gt"], truth):
        frame, order = frame_from_msg(image, IMAGE)
        assert order == "bgr"
        np.testing.assert_array_equal(frame[..., ::-1], rgb)
        np.testing.assert_array_equal(labels_from_msg(label, IMAGE), expected)


def test_camvid_layout_bag_maps_void_to_ignore(tmp_path):
    root = tmp_path / "camvid"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    label = np.tile(np.arange(12, dtype=np.uint8), (H, W // 12 + 1))[:, :W]  # 11 = void
    for name in ("0001TP_006690", "0001TP_006720"):
        cv2.imwrite(str(root / "val" / f"{name}.png"), np.full((H, W, 3), 90, np.uint8))
        cv2.imwrite(str(root / "valannot" / f"{name}.png"), label)
    code = make_bag.main(["--source", "camvid", "--root", str(root), "--split", "val",
                          "--out", str(tmp_path / "bag"), "--rate", str(RATE),
                          "--start", str(START)])
    assert code == 0
    messages = read_all(tmp_path / "bag")
    check_stamps(messages, 2)
    expected = label.copy()
    expected[expected == 11] = IGNORE_INDEX
    for _, msg in messages["/camera/labels_gt"]:
        np.testing.assert_array_equal(labels_from_msg(msg, IMAGE), expected)


def test_cityscapes_city_in_name_order(tmp_path):
    root = tmp_path / "cs"
    write_dataset(root, 3, split="val", height=H, width=W, sequence=True)
    code = make_bag.main(["--source", "cityscapes", "--root", str(root), "--split", "val",
                          "--city", "synthtown", "--frames", "2", "--out", str(tmp_path / "bag"),
                          "--rate", str(RATE), "--start", str(START)])
    assert code == 0
    messages = read_all(tmp_path / "bag")
    check_stamps(messages, 2)
    from bisestdc_core.data import build_dataset

    dataset = build_dataset("cityscapes", root, "val")
    for (_, msg), i in zip(messages["/camera/labels_gt"], range(2)):
        np.testing.assert_array_equal(labels_from_msg(msg, IMAGE), dataset[i]["label"])
    assert make_bag.main(["--source", "cityscapes", "--root", str(root), "--city", "nowhere",
                          "--out", str(tmp_path / "bag2")]) == 2


def test_help_exits_zero(capsys):
    for module in (make_bag, bag_eval_cli):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0
    assert "--image-format" in capsys.readouterr().out


# --- bag_eval: refusing bad bags before any inference ----------------------------------------


@pytest.fixture
def no_inference(monkeypatch):
    """Fail the test if the evaluator gets as far as building an engine."""
    def refuse(args):
        raise AssertionError("inference started on a bag that should have been refused")
    monkeypatch.setattr(bag_eval.offline, "build_segmenter", refuse)
    monkeypatch.setattr(bag_eval.run, "run_live", refuse)


def eval_fails(capsys, bag: Path, weights: Path, *extra: str) -> str:
    capsys.readouterr()  # what making the bag printed
    code = bag_eval_cli.main(["--bag", str(bag), "--weights", str(weights), "--network-size",
                          *NETWORK_SIZE, "--out", str(bag.parent / "report"), *extra])
    assert code == 2  # the one error boundary: one line on stderr, exit 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error: ")], err
    return err


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["offline", "live"])
def test_missing_topic_names_the_topics(tmp_path, capsys, no_inference, monkeypatch, mode,
                                        weights):
    monkeypatch.chdir(tmp_path)
    bag = synthetic_bag(tmp_path / "bag")
    text = eval_fails(capsys, bag, weights, "--mode", mode, "--image-topic", "/nope/image")
    assert "/nope/image not in bag" in text and str(bag) in text
    assert "/camera/image_raw (Image, 3 msgs)" in text
    text = eval_fails(capsys, bag, weights, "--mode", mode, "--labels-topic", "/nope/labels")
    assert "/nope/labels not in bag" in text


def test_ambiguous_image_topic(tmp_path, capsys, no_inference, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        for topic in ("/a/image_raw", "/b/image_raw", "/camera/labels_gt"):
            bag.add_topic(topic, IMAGE)
            bag.write(topic, labels_msg(np.zeros((H, W), np.uint8), header_msg(1, "c")), 1)
    text = eval_fails(capsys, path, weights)
    assert "several image topics (/a/image_raw, /b/image_raw)" in text


def test_empty_bag(tmp_path, capsys, no_inference, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bag"
    with BagWriter(path, "mcap") as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        bag.add_topic("/camera/labels_gt", IMAGE)
    text = eval_fails(capsys, path, weights)
    assert f"bag {path} has no messages on image topic /camera/image_raw" in text


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_corrupt_bag(tmp_path, capsys, no_inference, monkeypatch, storage, weights):
    monkeypatch.chdir(tmp_path)
    bag = synthetic_bag(tmp_path / "bag", "--storage", storage)
    data = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    data.write_bytes(data.read_bytes()[:500])  # truncated, as by a full disk
    text = eval_fails(capsys, bag, weights)
    assert "cannot read" in text and str(bag) in text
    text = eval_fails(capsys, tmp_path / "no_such_bag", weights)
    assert f"bag not found: {tmp_path / 'no_such_bag'}" in text


def test_labels_of_another_size(tmp_path, capsys, no_inference, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        bag.add_topic("/camera/labels_gt", IMAGE)
        for i in range(2):
            header = header_msg(1000 + i, "camera")
            bag.write("/camera/image_raw", image_msg(np.zeros((H, W, 3), np.uint8), "bgr8",
                                                     header), 1000 + i)
            bag.write("/camera/labels_gt", labels_msg(np.zeros((H // 2, W // 2), np.uint8),
                                                      header), 1000 + i)
    text = eval_fails(capsys, path, weights)
    assert f"labels on /camera/labels_gt are {W // 2}x{H // 2} but images on " \
           f"/camera/image_raw are {W}x{H}" in text


# --- bag_eval offline -------------------------------------------------------------------------


def test_stamp_matcher_scores_pairs_in_any_order():
    matcher = bag_eval.StampMatcher(CITYSCAPES)
    a, b = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)
    matcher.add_prediction(1, a)
    matcher.add_ground_truth(2, b)
    matcher.add_ground_truth(1, a)
    matcher.add_prediction(2, a)
    matcher.add_prediction(3, a)  # no ground truth: never scored
    assert matcher.scored == {1, 2}
    assert matcher.matrix.matrix[0, 0] == 4 and matcher.matrix.matrix[1, 0] == 4


@pytest.fixture(scope="module")
def direct_miou(weights, onnx_cache_dir) -> float:
    """The mIoU of a Segmenter over the synthetic frames the 4-frame bags hold, computed once:
    raw and png (lossless) bags carry the same frames."""
    from bisestdc_core.inference import Segmenter

    with pytest.MonkeyPatch.context() as patch:  # onnx_cache is per test: set it here
        patch.setenv("BISESTDC_CACHE_DIR", str(onnx_cache_dir))
        segmenter = Segmenter(weights=str(weights), engine="onnxruntime", device="cpu",
                              network_size=tuple(int(v) for v in NETWORK_SIZE))
    matrix = ConfusionMatrix(19)
    for rgb, truth in render_sequence(0, 4, H, W):
        matrix.update(segmenter.segment(rgb, channel_order="rgb").labels, truth)
    return matrix.miou()


@pytest.mark.slow
@pytest.mark.parametrize("image_format", ["raw", "png"])
def test_offline_report_matches_direct_confusion_matrix(tmp_path, weights, onnx_cache,
                                                        direct_miou, image_format):
    bag = synthetic_bag(tmp_path / "bag", "--image-format", image_format, frames=4)
    out = tmp_path / "report"
    code = bag_eval_cli.main(["--bag", str(bag), "--mode", "offline", "--weights", str(weights),
                          "--engine", "onnxruntime", "--device", "cpu", "--network-size",
                          *NETWORK_SIZE, "--out", str(out)])
    assert code == 0
    for name in ("report.json", "report.md", "per_class_iou.png", "latency_histogram.png",
                 "latency_timeline.png", "contact_sheet.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["frames_in_bag"] == report["frames_processed"] == report["frames_scored"] == 4
    assert report["frames_dropped"] == 0
    for stage in ("inference_ms", "decode_ms", "total_ms"):
        assert report["latency_ms"][stage]["count"] == 4
        assert report["latency_ms"][stage]["p50"] <= report["latency_ms"][stage]["p99"]
    assert report["throughput_fps"] > 0

    assert report["metrics"]["miou"] == pytest.approx(direct_miou, abs=1e-12)
    small = report["metrics"]["small_object_iou"]
    assert set(small) == set(CITYSCAPES.small_objects)
    assert "4 scored" in (out / "report.md").read_text()


# --- bag_eval live-mode plumbing (no ROS needed) ----------------------------------------------


def test_node_command_for_a_compressed_bag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bag = synthetic_bag(tmp_path / "bag", "--image-format", "jpeg", "--image-topic",
                        "/cam_front/image_raw")
    plan = bag_eval.inspect_bag(bag, None, "/camera/labels_gt")
    assert plan.image_topic == "/cam_front/image_raw/compressed"
    assert plan.frames == 3 and plan.label_stamps == set(plan.stamps)
    assert plan.rate_hz == pytest.approx(RATE)
    Path("w.pt").touch()
    args = bag_eval_cli.build_parser().parse_args(
        ["--bag", str(bag), "--mode", "live", "--weights", "w.pt", "--reliable",
         "--network-size", "128", "256", "--node-param", "qos_depth:=5"])
    camera, replay = bag_eval.replay_topic(plan, args)
    assert (camera, replay) == ("/cam_front/image_raw", "/cam_front/image_raw/compressed")
    card = bag_eval.EvalModel(CITYSCAPES, (128, 256), None, "--network-size")
    command = bag_eval.node_command(plan, args, camera, card)
    params = [command[i + 1] for i, a in enumerate(command) if a == "-p"]
    for expected in ("image_topics:=['/cam_front/image_raw']", "input_type:=compressed",
                     "qos:=reliable", "weights:=w.pt", "network_height:=128",
                     "network_width:=256", "qos_depth:=5"):
        assert expected in params


def test_large_frames_select_the_fastdds_profile(tmp_path, monkeypatch):
    for variable in node_process.FASTDDS_PROFILE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    plan = bag_eval.BagPlan(tmp_path, "/c/image", IMAGE, "/c/gt", IMAGE, [1], [1], {1}, 512,
                            1024, 512 * 1024 * 3)
    profile = bag_eval.configure_large_frames(plan)
    assert profile is not None and profile.endswith("fastdds_large_images.xml")
    assert all(os.environ[v] == profile for v in node_process.FASTDDS_PROFILE_VARIABLES)
    plan.frame_bytes = 1000
    for variable in node_process.FASTDDS_PROFILE_VARIABLES:
        monkeypatch.delenv(variable)
    assert bag_eval.configure_large_frames(plan) is None
    assert not any(v in os.environ for v in node_process.FASTDDS_PROFILE_VARIABLES)


# --- bag_eval: drives without labels, bad frames, the model card ------------------------------


def drive_without_labels(path: Path, frames: int = 5, bad: dict[int, str] | None = None,
                         resize: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """A recorded drive: JPEG frames only (no labels, no class set), as a camera records it.

    ``bad`` maps frame index -> "jpeg" (corrupt payload); ``resize`` frame index -> (h, w) (the
    camera changed resolution). Returns the stamps.
    """
    from bisestdc_ros.bags.messages import compressed_image_msg

    stamps = []
    with BagWriter(path, "mcap") as bag:
        bag.add_topic("/cam/image_raw/compressed", COMPRESSED_IMAGE)
        for i, (rgb, _) in enumerate(render_sequence(3, frames, H, W)):
            stamp = round(START * NS_PER_S) + i * NS_PER_S // 5
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            if resize and i in resize:
                bgr = cv2.resize(bgr, resize[i][::-1])
            msg = compressed_image_msg(bgr, "jpeg", header_msg(stamp, "cam"))
            if bad and bad.get(i) == "jpeg":
                msg.data = msg.data[:40]  # truncated in transit
            bag.write("/cam/image_raw/compressed", msg, stamp)
            stamps.append(stamp)
    return stamps


@pytest.mark.slow
def test_offline_inspects_a_drive_without_labels(tmp_path, weights, onnx_cache):
    bag = tmp_path / "drive"
    stamps = drive_without_labels(bag, bad={2: "jpeg"}, resize={4: (H * 2, W * 2)})
    out = tmp_path / "report"
    code = bag_eval_cli.main(["--bag", str(bag), "--weights", str(weights), "--engine",
                          "onnxruntime", "--device", "cpu", "--network-size", *NETWORK_SIZE,
                          "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"] is None and report["labels_topic"] is None
    assert report["frames_in_bag"] == 5 and report["frames_processed"] == 4
    assert report["frames_bad"] == 1
    assert (f"bag {bag}, topic /cam/image_raw/compressed, stamp "
            f"{bag_eval.format_stamp(stamps[2])}") in report["bad_frames"][0]
    assert report["engine"]["network_size"] == [int(v) for v in NETWORK_SIZE]
    shares = report["predicted_class_share"]
    assert set(shares) == set(CITYSCAPES.names) and sum(shares.values()) == pytest.approx(1.0)
    assert set(report["small_objects_found"]) == set(CITYSCAPES.small_objects)
    for name in ("report.md", "overlay.mp4", "contact_sheet.png", "class_shares.png",
                 "small_objects.png", "latency_histogram.png", "latency_timeline.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "per_class_iou.png").exists()  # nothing to score
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 4  # every decodable frame, resized ones too
    assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    video.release()
    markdown = (out / "report.md").read_text()
    assert "no labels (inspected, not scored)" in markdown and "## Frames skipped" in markdown


@pytest.mark.slow
def test_malformed_raw_frame_mid_bag_is_skipped(tmp_path, weights, onnx_cache):
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        bag.add_topic("/camera/labels_gt", IMAGE)
        for i, (rgb, truth) in enumerate(render_sequence(0, 3, H, W)):
            header = header_msg(1000 + i, "camera")
            msg = image_msg(rgb, "rgb8", header)
            if i == 1:
                msg.data = msg.data[: W * 3 * 2]  # two rows of a frame: a broken driver
            bag.write("/camera/image_raw", msg, 1000 + i)
            bag.write("/camera/labels_gt", labels_msg(truth, header), 1000 + i)
    out = tmp_path / "report"
    assert bag_eval_cli.main(["--bag", str(path), "--weights", str(weights), "--engine",
                          "onnxruntime", "--device", "cpu", "--network-size", *NETWORK_SIZE,
                          "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames_processed"] == report["frames_scored"] == 2
    assert report["frames_bad"] == 1
    assert "stamp 0.000001001: data has" in report["bad_frames"][0]


def test_out_of_range_labels_are_refused_up_front(tmp_path, capsys, no_inference, weights):
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        bag.add_topic("/camera/labels_gt", IMAGE)
        for i in range(2):
            header = header_msg(2000 + i, "camera")
            labels = np.zeros((H, W), np.uint8)
            labels[0, 0] = 30 if i == 1 else 0  # no Cityscapes train id
            bag.write("/camera/image_raw", image_msg(np.zeros((H, W, 3), np.uint8), "bgr8",
                                                     header), 2000 + i)
            bag.write("/camera/labels_gt", labels_msg(labels, header), 2000 + i)
    text = eval_fails(capsys, path, weights)
    assert "unknown class id(s) [30]" in text
    assert "topic /camera/labels_gt, stamp 0.000002001" in text


def test_bag_of_another_class_set_is_refused(tmp_path, capsys, no_inference, weights):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((H, W, 3), np.uint8))
    cv2.imwrite(str(labels / "a.png"), np.zeros((H, W), np.uint8))
    assert make_bag.main(["--source", "folder", "--root", str(images), "--label-dir",
                          str(labels), "--class-set", "camvid", "--out",
                          str(tmp_path / "bag")]) == 0
    text = eval_fails(capsys, tmp_path / "bag", weights)
    assert "labelled with class set 'camvid' but the model predicts 'cityscapes'" in text


def test_checkpoint_without_network_size_needs_it_explicitly(tmp_path, capsys, no_inference,
                                                             weights):
    bag = synthetic_bag(tmp_path / "bag")
    code = bag_eval_cli.main(["--bag", str(bag), "--weights", str(weights), "--out",
                          str(tmp_path / "report")])
    assert code == 2
    err = capsys.readouterr().err
    assert "has no network size in its checkpoint card" in err
    assert "--network-size H W" in err


def test_model_card_gives_size_and_class_set(tmp_path):
    from bisestdc_ros.demo import DEMO_WEIGHTS

    args = bag_eval_cli.build_parser().parse_args(["--bag", "b", "--weights", str(DEMO_WEIGHTS)])
    model = bag_eval.read_model_card(args)
    assert model.network_size == (256, 512) and model.class_set.name == "cityscapes"
    assert model.card == describe(DEMO_WEIGHTS) and model.card.model == "bisestdc"
    assert model.describe()["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert "checkpoint card" in model.source


def test_replay_offsets_cap_gaps():
    second = NS_PER_S
    times = [0, second // 10, second // 5, 3600 * second, 3600 * second + second // 10]
    offsets = bag_eval.replay_offsets(times, rate_factor=1.0, max_gap=0.5)
    assert offsets == pytest.approx([0.0, 0.1, 0.2, 0.7, 0.8])  # the hour became 0.5 s
    assert bag_eval.replay_offsets(times[:3], 2.0, 0.5) == pytest.approx([0.0, 0.05, 0.1])
    assert bag_eval.replay_offsets([5, 3, 4], 1.0, 1.0) == [0.0, 0.0, 1e-9]
