"""TensorRT engines built from every export variant agree with ONNX Runtime (GPU only).

Runs where TensorRT, pycuda and a CUDA device are present (``pytest -m gpu``); anywhere else
each test skips with the reason. fp16 labels must agree with ONNX Runtime's fp32 labels on at
least 99.5% of the pixels, int8 on 98% (from the QDQ graph quantized for TensorRT, the default,
and with the entropy calibrator, asked for, both on synthetic street frames). The build and run
options (timing cache, DLA, CUDA graph, zero-copy, layer profile) each have a test here too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from inference_helpers import realistic_frames

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.cuda_probe import driver_device_count
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.model_files import read_engine_sidecar
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.segmenter import Segmenter
from bisestdc_core.inference.tensorrt import build, platform, qdq_source
from bisestdc_core.inference.tensorrt.options import TensorRTOptions

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
    ok, reason = platform.tensorrt_available()
    if not ok:
        pytest.skip(f"GPU tests need TensorRT and pycuda: {reason}")
    if driver_device_count() == 0:
        pytest.skip("GPU tests need a CUDA device: the CUDA driver reports none")


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
    engine = build.ensure_engine(onnx_path, tmp_path / f"{name}.engine", "fp16")
    agreement = _agreement(onnx_path, engine, variant, _frames(variant))
    print(f"{name} fp16 agreement {agreement:.4%}")
    assert agreement >= THRESHOLDS["fp16"]


def _calibration_images(tmp_path):
    images = tmp_path / "calib"
    images.mkdir()
    for i, frame in enumerate(realistic_frames(32, *NETWORK_SIZE, seed=21)):
        cv2.imwrite(str(images / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return images


@pytest.mark.parametrize("name", ["plain", "bgr"])
def test_int8_engine_from_the_qdq_graph_agrees_with_onnxruntime(name, network, tmp_path):
    variant = VARIANTS[name]
    images = _calibration_images(tmp_path)
    onnx_path = _export(network, tmp_path / f"{name}.onnx", variant)
    qdq = qdq_source.qdq_graph_for(onnx_path, CalibrationSource(images=images))
    engine = build.ensure_engine(qdq, tmp_path / f"{name}.engine", "int8")
    assert read_engine_sidecar(engine)["int8_scales"]["quantization"] == "explicit"
    agreement = _agreement(onnx_path, engine, variant, _frames(variant))
    print(f"{name} int8 (QDQ) agreement {agreement:.4%}")
    assert agreement >= THRESHOLDS["int8"]


def test_int8_engine_with_implicit_calibration_agrees_with_onnxruntime(network, tmp_path):
    variant = VARIANTS["plain"]
    images = _calibration_images(tmp_path)
    onnx_path = _export(network, tmp_path / "plain.onnx", variant)
    engine = build.ensure_engine(onnx_path, tmp_path / "plain.engine", "int8",
                                 calibration=CalibrationSource(images=images),
                                 options=TensorRTOptions(int8_calibration="implicit"))
    assert read_engine_sidecar(engine)["int8_scales"]["quantization"] == "implicit"
    agreement = _agreement(onnx_path, engine, variant, _frames(variant))
    print(f"plain int8 (implicit) agreement {agreement:.4%}")
    assert agreement >= THRESHOLDS["int8"]


def test_timing_cache_is_written_and_reused(network, tmp_path, caplog):
    onnx_path = _export(network, tmp_path / "plain.onnx", VARIANTS["plain"])
    timing = tmp_path / "timing.cache"
    options = TensorRTOptions(timing_cache=str(timing))
    build.ensure_engine(onnx_path, tmp_path / "a.engine", "fp16", options=options)
    assert timing.stat().st_size > 0
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.tensorrt"):
        build.ensure_engine(onnx_path, tmp_path / "b.engine", "fp32", options=options)
    assert any(f"using timing cache {timing}" in r.getMessage() for r in caplog.records)


def test_damaged_engine_is_rebuilt(network, tmp_path):
    onnx_path = _export(network, tmp_path / "plain.onnx", VARIANTS["plain"])
    engine = build.ensure_engine(onnx_path, tmp_path / "plain.engine", "fp16")
    engine.write_bytes(engine.read_bytes()[:1000])
    build.ensure_engine(onnx_path, engine, "fp16")
    assert _agreement(onnx_path, engine, VARIANTS["plain"], _frames(VARIANTS["plain"])) >= \
        THRESHOLDS["fp16"]


def _options_agree(network, tmp_path, options):
    variant = VARIANTS["confidence"]
    onnx_path = _export(network, tmp_path / "m.onnx", variant)
    engine = build.ensure_engine(onnx_path, tmp_path / "m.engine", "fp16")
    plain = Segmenter(engine_path=engine, engine="tensorrt", device="cuda")
    tuned = Segmenter(engine_path=engine, engine="tensorrt", device="cuda",
                      tensorrt_options=options)
    for frame in _frames(variant):
        for _ in range(2):  # the second frame replays a captured graph
            assert np.array_equal(plain.segment(frame).labels, tuned.segment(frame).labels)
    return engine


def test_cuda_graph_replay_gives_the_same_labels(network, tmp_path):
    try:
        platform.import_cuda_runtime()
    except platform.TensorRTUnavailable as error:
        pytest.skip(f"cuda_graph needs cuda-python: {error}")
    _options_agree(network, tmp_path, TensorRTOptions(cuda_graph=True))


def test_zero_copy_buffers_give_the_same_labels(network, tmp_path):
    # forced on: mapped host memory also works on discrete GPUs (over PCIe), so it is tested
    # wherever the GPU tests run; auto turns it on only on integrated GPUs
    _options_agree(network, tmp_path, TensorRTOptions(zero_copy="on"))


def test_layer_profile_is_written(network, tmp_path):
    engine = _options_agree(network, tmp_path, TensorRTOptions(profile_layers=3))
    report = json.loads(engine.with_suffix(".layers.json").read_text())
    assert report["frames"] == 3 and report["layers_ms"] and report["total_ms"] > 0


def test_dla_core_builds_on_dla_or_is_refused(network, tmp_path):
    import tensorrt as trt

    onnx_path = _export(network, tmp_path / "plain.onnx", VARIANTS["plain"])
    cores = trt.Builder(platform.trt_logger()).num_DLA_cores
    options = TensorRTOptions(dla_core=0)
    if cores == 0:
        with pytest.raises(platform.TensorRTUnavailable, match="has no DLA cores"):
            build.ensure_engine(onnx_path, tmp_path / "dla.engine", "fp16", options=options)
        return
    engine = build.ensure_engine(onnx_path, tmp_path / "dla.engine", "fp16", options=options)
    assert read_engine_sidecar(engine)["dla_core"] == 0
    assert _agreement(onnx_path, engine, VARIANTS["plain"], _frames(VARIANTS["plain"])) >= \
        THRESHOLDS["fp16"]


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
