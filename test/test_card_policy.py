"""One model-card check for every reader: the same network-size rule (``ModelCard.from_dict``)
and the same policy for unknown class sets (``card_class_set``: fall back to the class count)
in the node's and the engines' loaders, bag-eval, evaluation, export and packaging."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from bisestdc_core.classes import CAMVID, CITYSCAPES
from bisestdc_core.cli import evaluate as evaluate_cli
from bisestdc_core.cli.package_checkpoint import main as package_main
from bisestdc_core.inference.class_choice import resolve_class_set
from bisestdc_core.inference.model_files import describe
from bisestdc_core.model_card import (
    NETWORK_STRIDE,
    ModelCard,
    ModelCardError,
    card_class_set,
    check_network_size,
)
from bisestdc_core.models import build_model, save_checkpoint
from bisestdc_ros.bag_eval import EvalError, read_model_card


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cards")
    torch.manual_seed(0)
    network = build_model("stdc1", 19)
    paths = {"mars": root / "mars.pt", "odd": root / "odd.pt"}
    save_checkpoint(paths["mars"], network, "stdc1", "mars", half=True, network_size=[64, 128])
    save_checkpoint(paths["odd"], network, "stdc1", "cityscapes", half=True,
                    network_size=[33, 47])
    return paths


def card(**fields) -> ModelCard:
    return ModelCard.from_dict({"model": "stdc1", "num_classes": 19, **fields}, "x.pt")


@pytest.mark.parametrize("size", [[33, 47], [64, 100], [48, 64]])
def test_a_size_the_strides_cannot_take_is_refused_by_the_card_reader(size):
    with pytest.raises(ModelCardError, match=r"x.pt: card field 'network_size' = .*multiples "
                                             f"of {NETWORK_STRIDE}"):
        card(network_size=size)
    with pytest.raises(ModelCardError, match="--network-size"):
        check_network_size(size, "--network-size")


def test_sizes_the_strides_take_pass():
    assert card(network_size=[64, 128]).network_size == (64, 128)
    assert check_network_size([32, 2048], "--network-size") == (32, 2048)


@pytest.mark.slow
def test_bag_eval_refuses_by_the_card_readers_rule(checkpoints):
    with pytest.raises(ModelCardError) as from_reader:
        describe(checkpoints["odd"])
    args = argparse.Namespace(onnx=None, weights=str(checkpoints["odd"]), num_classes=19,
                              class_set=None, network_size=None)
    with pytest.raises(EvalError) as from_bag_eval:
        read_model_card(args)
    assert str(from_bag_eval.value) == str(from_reader.value)


@pytest.mark.parametrize("stored,num_classes,expected", [
    ("cityscapes", 19, CITYSCAPES), ("mars", 19, CITYSCAPES), (None, 19, CITYSCAPES),
    ("mars", 11, CAMVID), ("mars", 7, None)])
def test_unknown_class_sets_fall_back_to_the_class_count(stored, num_classes, expected):
    fields = {"num_classes": num_classes, **({"class_set": stored} if stored else {})}
    assert card_class_set(card(**fields)) == expected
    # The engines' and the node's resolver takes the same decision where a known set exists.
    resolved = resolve_class_set(None, stored, num_classes)
    assert resolved == expected if expected else resolved.name == f"generic{num_classes}"


def test_a_requested_class_set_must_fit_the_card():
    assert card_class_set(card(class_set="mars"), "cityscapes") == CITYSCAPES
    with pytest.raises(ModelCardError, match="'camvid' has 11 classes but the network predicts"):
        card_class_set(card(), "camvid")
    with pytest.raises(ModelCardError, match="unknown class set 'venus'"):
        card_class_set(card(), "venus")


@pytest.mark.slow
def test_bag_eval_packaging_and_evaluate_accept_an_unknown_class_set(checkpoints, tmp_path,
                                                                    capsys):
    args = argparse.Namespace(onnx=None, weights=str(checkpoints["mars"]), num_classes=19,
                              class_set=None, network_size=None)
    assert read_model_card(args).class_set == CITYSCAPES
    packaged = tmp_path / "packaged.pt"
    assert package_main([str(checkpoints["mars"]), str(packaged)]) == 0
    assert describe(packaged).class_set == "mars"
    from bisestdc_core.data.synthetic import write_dataset

    root = tmp_path / "val"
    write_dataset(root, 1, split="val", height=64, width=128, seed=5)
    out = tmp_path / "eval"
    assert evaluate_cli.main(["--weights", str(checkpoints["mars"]), "--dataset", "synthetic",
                              "--root", str(root), "--out", str(out), "--device", "cpu",
                              "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["iou"]) == set(CITYSCAPES.names)
