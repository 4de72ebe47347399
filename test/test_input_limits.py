"""Hardening round 2: config and bag metadata limits, null sections, out_dir, split keys.

Each test is a reproducer of the issue: a file that used to crash with a traceback (or take
half a minute to) is now refused with one line naming the file and key. No training.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from bisestdc_core.safe_files import check_output_dir, nesting_depth
from bisestdc_core.training.config import ConfigError, load_config
from bisestdc_ros.bags.messages import header_msg, image_msg
from bisestdc_ros.bags.reader import BagError, BagReader
from bisestdc_ros.bags.writer import BagWriter

IMAGE = "sensor_msgs/msg/Image"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- 1. configs: nesting and size before parsing ----------------------------------------------

@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [
    "model: " + "[" * 3000 + "]" * 3000 + "\n",
    "model: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "".join(" " * i + f"k{i}:\n" for i in range(300)) + " " * 300 + "v: 1\n",
    "model:\n" + "- " * 3000 + "x\n",
])
def test_deeply_nested_config_is_refused_quickly(tmp_path, text):
    path = _write(tmp_path / "deep.yaml", text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="deep.yaml.*nested .* levels deep"):
        load_config(path)
    assert time.monotonic() - start < 2


def test_huge_config_is_refused_before_reading(tmp_path):
    path = _write(tmp_path / "huge.yaml", "# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"huge.yaml: \d+ bytes, more than"):
        load_config(path)


def test_deep_override_value_is_refused():
    with pytest.raises(ConfigError, match="override 'data.scales'.*nested"):
        load_config(None, ["data.scales=" + "[" * 3000 + "]" * 3000])


def test_normal_nesting_is_counted_low():
    assert nesting_depth("a:\n  b:\n    c: [1, {x: 2}]\n  d:\n  - 1\n  - 2\n") <= 5
    cfg_dir = Path(__file__).resolve().parents[1] / "config"
    for cfg in cfg_dir.rglob("*.yaml"):
        assert nesting_depth(cfg.read_text(encoding="utf-8")) <= 8, cfg


# ---- 3. null sections and values; wrong types by key ------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("model: null\n", "'model': must be a mapping, got null"),
    ("model:\n", "'model': must be a mapping, got null"),
    ("data: 3\n", "'data': must be a mapping, got 3"),
    ("model:\n  name: null\n", "'model.name': must be str, got null"),
    ("data:\n  batch_size: null\n", "'data.batch_size': must be int, got null"),
    ("data:\n  scales: null\n", "'data.scales': must be list"),
    ("data:\n  batch_size: many\n", "'data.batch_size': expected int, got 'many'"),
    ("optim:\n  lr: .nan\n", "'optim.lr' must be"),
])
def test_null_and_wrong_values_are_refused_by_key(tmp_path, text, message):
    path = _write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert "c.yaml" in str(info.value)
    assert "\n" not in str(info.value)


def test_optional_values_may_still_be_null(tmp_path):
    cfg = load_config(_write(tmp_path / "c.yaml", "model:\n  weights: null\n"))
    assert cfg.model.weights is None


# ---- 2. train.out_dir ---------------------------------------------------------------------------

def test_out_dir_naming_a_file_is_a_usage_error(tmp_path):
    target = _write(tmp_path / "runs", "not a folder")
    with pytest.raises(ConfigError, match=r"train.out_dir: .*runs is a file, not a folder"):
        check_output_dir(target, "train.out_dir", ConfigError)
    with pytest.raises(ConfigError, match=r"train.out_dir: .*sub cannot be used as a folder"):
        check_output_dir(target / "sub", "train.out_dir", ConfigError)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_out_dir_under_proc_is_a_usage_error():
    with pytest.raises(ConfigError, match=r"train.out_dir: cannot create the folder /proc"):
        check_output_dir("/proc/bisestdc-run", "train.out_dir", ConfigError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_dir_not_writable_is_a_usage_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    try:
        with pytest.raises(ConfigError, match=r"train.out_dir: .*not writable"):
            check_output_dir(folder, "train.out_dir", ConfigError)
    finally:
        folder.chmod(0o755)


def test_trainer_checks_out_dir_before_any_work(tmp_path):
    from bisestdc_core.training.trainer import Trainer

    target = _write(tmp_path / "runs", "x")
    cfg = load_config(None, [f"train.out_dir={target}", "train.device=cpu", "train.amp=none"])
    trainer = Trainer(cfg)
    with pytest.raises(ConfigError, match="train.out_dir: .* is a file"):
        trainer._setup()


def test_out_dir_that_works_is_created(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b", "train.out_dir", ConfigError).is_dir()


# ---- 6. a bad split is reported under its own key -----------------------------------------------

def test_missing_split_names_the_split_key(tmp_path):
    from bisestdc_core.data.registry import build_dataset
    from bisestdc_core.training.trainer import _dataset_errors_named

    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"^'data.train_split': image folder not found"), \
            _dataset_errors_named(str(tmp_path), "data.train_split"):
        build_dataset("cityscapes", tmp_path, "trian")
    with pytest.raises(ConfigError, match=r"^'data.root': "), \
            _dataset_errors_named(str(tmp_path / "nope"), "data.train_split"):
        build_dataset("cityscapes", tmp_path / "nope", "train")


# ---- 4. bag metadata -----------------------------------------------------------------------------

def small_bag(path: Path) -> Path:
    with BagWriter(path) as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        for i in range(2):
            stamp = 1_000_000_000 + i
            bag.write("/camera/image_raw",
                      image_msg(np.zeros((4, 6, 3), np.uint8), "bgr8", header_msg(stamp, "c")),
                      stamp)
    return path


def _edit_metadata(bag: Path, edit) -> Path:
    meta = bag / "metadata.yaml"
    doc = yaml.safe_load(meta.read_text())
    edit(doc["rosbag2_bagfile_information"])
    meta.write_text(yaml.safe_dump(doc))
    return meta


def test_small_bag_still_opens(tmp_path):
    with BagReader(small_bag(tmp_path / "b")) as reader:
        assert reader.counts == {"/camera/image_raw": 2}


@pytest.mark.parametrize(("edit", "key"), [
    (lambda i: i.update(message_count="many"), "message_count': must be a whole number"),
    (lambda i: i.update(message_count=float("nan")), "message_count': must be a whole number"),
    (lambda i: i["topics_with_message_count"][0].update(message_count="many"),
     "topics_with_message_count[0].message_count': must be a whole number"),
    (lambda i: i["topics_with_message_count"][0].update(message_count=None),
     "topics_with_message_count[0].message_count': must be a whole number, got null"),
    (lambda i: i.update(relative_file_paths=[3]), "relative_file_paths[0]': must be a file"),
    (lambda i: i["duration"].update(nanoseconds="long"), "duration.nanoseconds'"),
    (lambda i: i.update(topics_with_message_count=None), "topics_with_message_count': must be"),
])
def test_bad_metadata_values_are_one_line_bag_errors(tmp_path, edit, key):
    bag = small_bag(tmp_path / "b")
    _edit_metadata(bag, edit)
    with pytest.raises(BagError) as info:
        BagReader(bag)
    message = str(info.value)
    assert "metadata.yaml" in message and key in message and "\n" not in message


@pytest.mark.timeout(10)
def test_deeply_nested_metadata_is_refused_before_parsing(tmp_path):
    bag = small_bag(tmp_path / "b")
    meta = bag / "metadata.yaml"
    text = meta.read_text()
    deep = "offered_qos_profiles: " + "[" * 5000 + "]" * 5000
    meta.write_text(text.replace("offered_qos_profiles:", deep + "\n      x_qos:", 1)
                    if "offered_qos_profiles:" in text else text + "deep: " + "[" * 5000
                    + "]" * 5000 + "\n")
    start = time.monotonic()
    with pytest.raises(BagError, match=r"metadata.yaml: nested \d+ levels deep"):
        BagReader(bag)
    assert time.monotonic() - start < 2


def test_huge_metadata_is_refused(tmp_path, monkeypatch):
    from bisestdc_ros.bags import reader as bag_io

    bag = small_bag(tmp_path / "b")
    monkeypatch.setattr(bag_io, "MAX_METADATA_BYTES", 64)
    with pytest.raises(BagError, match=r"bag metadata .*metadata.yaml: \d+ bytes, more than"):
        BagReader(bag)
