"""Hardening round 2: FIFOs, devices and symlink loops are refused by name, never opened.

A FIFO in place of a bag's .db3 made bag-eval block in open() forever (deaf to SIGTERM). Each
test runs under a timeout: a regression shows as a timeout, not a hung suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bisestdc_core.data.registry import build_dataset
from bisestdc_core.models.checkpoint import CheckpointError, read_file
from bisestdc_core.safe_files import require_regular_file
from bisestdc_core.training.config import ConfigError, load_config
from bisestdc_ros.bags.messages import header_msg, image_msg
from bisestdc_ros.bags.reader import BagError, BagReader
from bisestdc_ros.bags.writer import BagWriter

pytestmark = [pytest.mark.timeout(10),
              pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def loop(path: Path) -> Path:
    path.symlink_to(path.name)  # points at itself
    return path


def test_helper_names_each_kind(tmp_path):
    with pytest.raises(ValueError, match=r"weights .*w.pt: a FIFO \(named pipe\), not a regular"):
        require_regular_file(fifo(tmp_path / "w.pt"), "weights")
    with pytest.raises(ValueError, match=r"weights .*l.pt: a symlink loop"):
        require_regular_file(loop(tmp_path / "l.pt"), "weights")
    with pytest.raises(ValueError, match=r"weights .*: a folder, not a regular"):
        require_regular_file(tmp_path, "weights")
    with pytest.raises(ValueError, match=r"weights .*m.pt: no such file"):
        require_regular_file(tmp_path / "m.pt", "weights")
    if Path("/dev/null").exists():
        with pytest.raises(ValueError, match=r"/dev/null: a device"):
            require_regular_file("/dev/null", "weights")
    regular = tmp_path / "r.pt"
    regular.write_bytes(b"x")
    assert require_regular_file(regular, "weights") == regular
    (tmp_path / "link.pt").symlink_to("r.pt")
    assert require_regular_file(tmp_path / "link.pt", "weights") == tmp_path / "link.pt"


def test_checkpoint_fifo_device_and_loop_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint .*last.pt: a FIFO"):
        read_file(fifo(tmp_path / "last.pt"))
    with pytest.raises(CheckpointError, match=r"symlink loop"):
        read_file(loop(tmp_path / "loop.pt"))
    with pytest.raises(CheckpointError, match=r"no such checkpoint file"):
        read_file(tmp_path / "missing.pt")
    if Path("/dev/zero").exists():
        with pytest.raises(CheckpointError, match=r"/dev/zero: a device"):
            read_file("/dev/zero")


def test_config_fifo_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*c.yaml: a FIFO"):
        load_config(fifo(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match=r"symlink loop"):
        load_config(loop(tmp_path / "l.yaml"))
    base = tmp_path / "child.yaml"
    fifo(tmp_path / "base.yaml")
    base.write_text("base: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base.yaml: a FIFO"):
        load_config(base)


def test_dataset_listing_refuses_fifo_images_and_labels(tmp_path):
    city = tmp_path / "leftImg8bit" / "val" / "aachen"
    city.mkdir(parents=True)
    fifo(city / "aachen_000000_000019_leftImg8bit.png")
    with pytest.raises(ValueError, match=r"image .*leftImg8bit.png: a FIFO"):
        build_dataset("cityscapes", tmp_path, "val")
    images = tmp_path / "images"
    labels = tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    (images / "a.png").write_bytes(b"")
    fifo(labels / "a.png")
    with pytest.raises(ValueError, match=r"label .*a.png: a FIFO"):
        build_dataset("folder", images, label_dir=labels)
    fifo(images / "b.jpg")
    with pytest.raises(ValueError, match=r"image .*b.jpg: a FIFO"):
        build_dataset("folder", images)


def small_bag(path: Path) -> Path:
    with BagWriter(path) as bag:
        bag.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        bag.write("/camera/image_raw",
                  image_msg(np.zeros((4, 6, 3), np.uint8), "bgr8", header_msg(1, "c")), 1)
    return path


def test_bag_with_a_fifo_database_is_refused_without_blocking(tmp_path):
    bag = small_bag(tmp_path / "b")
    (db3,) = bag.glob("*.db3")
    db3.unlink()
    fifo(db3)
    with pytest.raises(BagError, match=rf"bag storage file .*{db3.name}: a FIFO"):
        with BagReader(bag):
            pass


def test_bag_fifo_listed_in_metadata_under_other_name_is_refused(tmp_path):
    bag = small_bag(tmp_path / "b")
    (db3,) = bag.glob("*.db3")
    meta = bag / "metadata.yaml"
    meta.write_text(meta.read_text().replace(db3.name, "data"))
    db3.unlink()
    fifo(bag / "data")
    with pytest.raises(BagError, match=r"bag storage file .*/data: a FIFO"):
        BagReader(bag)


def test_bag_metadata_fifo_and_bag_fifo_are_refused(tmp_path):
    bag = small_bag(tmp_path / "b")
    (bag / "metadata.yaml").unlink()
    fifo(bag / "metadata.yaml")
    with pytest.raises(BagError, match=r"bag metadata .*metadata.yaml: a FIFO"):
        BagReader(bag)
    with pytest.raises(BagError, match=r"bag .*run.mcap: a FIFO"):
        BagReader(fifo(tmp_path / "run.mcap"))
