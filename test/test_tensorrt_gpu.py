"""TensorRT engines built from every export variant agree with ONNX Runtime (GPU only).

Runs where TensorRT, pycuda and a CUDA device are present (``pytest -m gpu``); anywhere else
each test skips with the reason. fp16 labels must agree with ONNX Runtime's fp32 labels on at
least 99.5% of the pixels, int8 (entropy calibration on synthetic street frames) on 98%.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from inference_helpers import realistic_frames

from bisestdc_core.inference import tensorrt_engine as te
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.model_files import sidecar_path
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.segmenter import Segmenter

pytestmark = pytest.mark.gpu

DEMO_WEIGHTS = (Path(__file__).resolve().parents[1]
                / "training/checkpoints/demo/bisestdc_synthetic.pt")
NETWORK_SIZE = (256, 512)
FIXED_INPUT = (300, 560)
VARIANTS = {
    "plain": {},
    "confidence": {"confidence": True},
    "labels_at_input_size": {"input_size": FIXED_INPUT, "labels_at_input_size": True},
    "dynamic": {"dynamic": True, "confidence": True},
    "bgr": {"channel_order": "bgr"},
}
THRESHOLDS = {"fp16": 0.995, "int8": 0.98}


@pytest.fixture(scope="module", autouse=True)
def tensorrt_here():
    ok, reason = te.tensorrt_available()
    if not ok:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def network():
    return load_network(DEMO_WEIGHTS, "bisestdc", 19)


def _export(network, path, variant):
    model, card = network
    export_onnx(model, path, card.replace(network_size=NETWORK_SIZE), **variant)
    return path


def _agreement(onnx_path, engine_path, variant, frames):
    order = variant.get("channel_order", "rgb")
    reference = Segmenter(onnx=onnx_path, engine="onnxruntime", device="cpu")
    engine = Segmenter(engine_path=engine_path, engine="tensorrt", device="cuda")
    agree = total = 0
    for frame in frames:
        frame = np.ascontiguousarray(frame[..., ::-1]) if order == "bgr" else frame
        want = reference.segment(frame, order).labels
        got = engine.segment(frame, order).labels
        agree += int((want == got).sum())
        total += want.size
    return agree / total


def _frames(variant):
    height, width = variant.get("input_size", NETWORK_SIZE)
    return realistic_frames(6, height, width, seed=11)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fp16_engine_agrees_with_onnxruntime(name, network, tmp_path):
    variant = VARIANTS[name]
    onnx_path = _export(network, tmp_path / f"{name}.onnx", variant)
    engine = te.ensure_engine(onnx_path, tmp_path / f"{name}.engine", "fp16")
    agreement = _agreement(onnx_path, engine, variant, _frames(variant))
    print(f"{name} fp16 agreement {agreement:.4%}")
    assert agreement >= THRESHOLDS["fp16"]


@pytest.mark.parametrize("name", ["plain", "bgr"])
def test_int8_engine_agrees_with_onnxruntime(name, network, tmp_path):
    variant = VARIANTS[name]
    images = tmp_path / "calib"
    images.mkdir()
    for i, frame in enumerate(realistic_frames(32, *NETWORK_SIZE, seed=21)):
        cv2.imwrite(str(images / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    onnx_path = _export(network, tmp_path / f"{name}.onnx", variant)
    engine = te.ensure_engine(onnx_path, tmp_path / f"{name}.engine", "int8",
                              calibration=CalibrationSource(images=images))
    agreement = _agreement(onnx_path, engine, variant, _frames(variant))
    print(f"{name} int8 agreement {agreement:.4%}")
    assert agreement >= THRESHOLDS["int8"]


def test_auto_falls_back_when_the_parser_refuses(network, tmp_path, caplog):
    """A graph ONNX Runtime runs but TensorRT's parser refuses (a uint8 intermediate, as the
    exports once had): auto takes ONNX Runtime with one warning, explicit tensorrt fails."""
    good = _export(network, tmp_path / "good.onnx", VARIANTS["plain"])
    model = onnx.load(str(good))
    cast = model.graph.node[0]
    assert cast.op_type == "Cast" and cast.input[0] == "image"
    transpose = onnx.helper.make_node("Transpose", ["image"], ["image_copy"], perm=[0, 1, 2, 3])
    cast.input[0] = "image_copy"
    model.graph.node.insert(0, transpose)
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    sidecar_path(bad).write_text(sidecar_path(good).read_text())
    with caplog.at_level(logging.WARNING):
        segmenter = Segmenter(onnx=bad, engine="auto", device="cuda", precision="fp16")
    assert segmenter.engine_name == "onnxruntime"
    warnings = [r for r in caplog.records if "tensorrt failed" in r.getMessage()]
    assert len(warnings) == 1 and "could not parse" in warnings[0].getMessage()
    with pytest.raises(RuntimeError, match="engine tensorrt failed: .*could not parse"):
        Segmenter(onnx=bad, engine="tensorrt", device="cuda", precision="fp16")
