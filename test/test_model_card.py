"""The model card: one reader and one writer for checkpoints, ONNX and TensorRT sidecars, and
describe() on any of the three (#14)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from inference_helpers import SMALL, cityscapes_card, export_graph, nondegenerate_model

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.inference.model_files import (
    MissingCard,
    describe,
    engine_card,
    read_engine_sidecar,
    write_engine_sidecar,
)
from bisestdc_core.inference.tensorrt import cache_key as te
from bisestdc_core.model_card import ModelCard, ModelCardError
from bisestdc_core.models import save_checkpoint
from bisestdc_core.models.checkpoint import read_file


@pytest.fixture(scope="module")
def network():
    return nondegenerate_model("stdc1")


def test_round_trip_keeps_every_field():
    card = cityscapes_card("stdc1", eval_scale=0.75, channel_order="bgr", precision="int8",
                           outputs=("labels", "confidence"), input_size=(100, 180),
                           labels_at_input_size=True, float_layers=("head",))
    stored = json.loads(json.dumps(card.to_dict()))
    assert ModelCard.from_dict(stored, "x.json") == card
    # Fields a file does not fix are left out, not written as null.
    assert set(ModelCard(model="stdc1", num_classes=19).to_dict()) == {
        "model", "num_classes", "mean", "std"}


@pytest.mark.parametrize(("name", "value"), [
    ("classes", ["road"]), ("channel_order", "yuv"), ("precision", "fp8"),
    ("outputs", ["confidence"]), ("outputs", ["labels", "labels"]), ("input_size", [0, 10]),
    ("labels_at_input_size", "yes"), ("float_layers", "head"), ("eval_scale", math.nan),
    ("network_size", [4096, 4096]), ("num_classes", 0), ("model", ""),
])
def test_fields_out_of_bounds_are_named(name, value):
    data = {**cityscapes_card("stdc1").to_dict(), name: value}
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict(data, "bad.onnx.json")
    assert str(info.value).startswith(f"bad.onnx.json: card field {name!r} = ")
    assert "\n" not in str(info.value)


def test_describe_a_checkpoint(network, tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, network, "stdc1", "cityscapes", network_size=SMALL, eval_scale=0.5)
    card = describe(path)
    assert card == ModelCard(model="stdc1", num_classes=19, class_set="cityscapes",
                             network_size=SMALL, eval_scale=0.5)
    # The checkpoint's keys are the card's (the dict layout files have always had).
    obj = read_file(path)
    assert {k: obj[k] for k in card.to_dict()} == card.to_dict()
    seed = tmp_path / "seed.pth"
    torch.save(obj["state_dict"], seed)
    with pytest.raises(MissingCard, match="seed.pth: holds no model card"):
        describe(seed)


@pytest.mark.slow
def test_describe_an_onnx_export(network, tmp_path):
    path = tmp_path / "m.onnx"
    exported = export_graph(network, path, channel_order="bgr", confidence=True,
                            input_size=(96, 160))
    card = describe(path)
    assert card == exported and card.source == str(sidecar_path(path))
    assert card.channel_order == "bgr" and card.precision == "fp32"
    assert card.outputs == ("labels", "confidence") and card.input_size == (96, 160)
    assert card.network_size == SMALL and card.class_names[0] == "road"
    sidecar_path(path).unlink()
    with pytest.raises(MissingCard, match="m.onnx: no sidecar"):
        describe(path)


@pytest.mark.slow
def test_describe_a_tensorrt_engine_by_its_sidecar(network, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    exported = export_graph(network, onnx_path, dynamic=True)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"serialized engine")
    key = te.engine_cache_key("0" * 64, {"name": "GPU", "compute_capability": [8, 7]},
                              "10.0.1", "fp16", [1, *SMALL, 3])
    write_engine_sidecar(engine, key, onnx_path)
    card = describe(engine)
    assert card == exported.replace(precision="fp16", input_size=SMALL)
    assert card == engine_card(read_engine_sidecar(engine), engine)
    assert te.cache_status(engine, key) == []


@pytest.mark.slow
def test_a_broken_sidecar_is_named(network, tmp_path):
    path = tmp_path / "m.onnx"
    export_graph(network, path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(ModelCardError, match="m.onnx.json: not valid JSON"):
        describe(path)
    sidecar_path(path).write_text(json.dumps({"format": "bisestdc-onnx", "model": "stdc1",
                                              "num_classes": 19, "std": [0, 1, 1]}))
    with pytest.raises(ModelCardError, match="card field 'std'"):
        describe(path)
