"""The dataset check before training: bad files named, refused or skipped, never mid-run (#17)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT

from bisestdc_core.data.check import DatasetCheckError, check_samples, check_split
from bisestdc_core.data.datasets import CityscapesDataset
from bisestdc_core.data.synthetic import write_dataset

CONFIG = REPO_ROOT / "training/configs/bisestdc_synthetic.yaml"


@pytest.fixture(scope="module")
def streets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streets")
    write_dataset(root, 6, split="train", height=64, width=128, seed=3)
    return root


def spoil(root: Path) -> dict[str, str]:
    """Three kinds of bad pair in the train split; returns name -> what is wrong."""
    images = sorted((root / "leftImg8bit/train").glob("*/*.png"))
    labels = sorted((root / "gtFine/train").glob("*/*_labelIds.png"))
    images[1].write_bytes(images[1].read_bytes()[:100])  # truncated PNG
    cv2.imwrite(str(labels[3]), np.zeros((32, 64), np.uint8))  # half-size label
    labels[4].unlink()
    stem = lambda p: p.name.split("_leftImg8bit")[0]  # noqa: E731
    return {stem(images[1]): "cannot decode image", stem(images[3]): "differs from its image",
            stem(images[4]): "label not found"}


def test_check_names_every_bad_pair(streets, tmp_path):
    root = tmp_path / "streets"
    shutil.copytree(streets, root)
    expected = spoil(root)
    dataset = CityscapesDataset(root, "train")
    bad = check_samples(dataset, progress=False)
    assert {b.name: b.reason for b in bad}.keys() == expected.keys()
    for b in bad:
        assert expected[b.name] in b.reason and b.name in b.reason

    with pytest.raises(DatasetCheckError, match=r"split 'train': 3 of 6 samples cannot be used"):
        check_split(dataset, "train", skip_bad=False, report=tmp_path / "report.json",
                    progress=False)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["total"] == 6 and {b["name"] for b in report["bad"]} == set(expected)
    assert len(dataset) == 6  # refusing drops nothing

    check_split(dataset, "train", skip_bad=True, report=None, progress=False)
    assert len(dataset) == 3 and not check_samples(dataset, progress=False)


@pytest.mark.slow
def test_train_refuses_bad_dataset_before_work_or_skips_with_flag(streets, tmp_path, capsys):
    from bisestdc_core.cli.train import main

    root = tmp_path / "streets"
    shutil.copytree(streets, root)
    expected = spoil(root)
    run = tmp_path / "run"
    overrides = ["model.name=stdc1", f"data.root={root}", "data.crop_size=[64,128]",
                 "data.batch_size=2", "data.workers=0", "train.max_iters=1",
                 "train.eval_every=0", f"train.out_dir={run}", "optim.warmup_iters=0"]
    assert main(["--config", str(CONFIG), *overrides]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: split 'train': 3 of 6 samples cannot be used")
    assert str(run / "dataset_check_train.json") in last and "--skip-bad" in last
    assert sorted(expected)[0] in last
    assert "Traceback" not in err
    assert not (run / "last.pt").exists() and not (run / "losses.jsonl").exists()

    assert main(["--config", str(CONFIG), "--skip-bad", *overrides]) == 0
    assert (run / "last.pt").is_file()
    report = json.loads((run / "dataset_check_train.json").read_text())
    assert {b["name"] for b in report["bad"]} == set(expected)
