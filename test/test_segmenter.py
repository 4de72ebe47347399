"""Segmenter on CPU: engines, auto choice, frame sizes, channel order, timings, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from inference_helpers import SMALL, nondegenerate_model, realistic_frames

from bisestdc_core.classes import CITYSCAPES
from bisestdc_core.inference import SegmentationResult, Segmenter, available_engines
from bisestdc_core.models import save_checkpoint

STAGES = {"preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "stdc1.pth"
    save_checkpoint(path, nondegenerate_model("stdc1"), "stdc1", "cityscapes")
    return path


@pytest.fixture(scope="module")
def cpu_segmenters(checkpoint, tmp_path_factory):
    """engine -> a Segmenter of ``checkpoint`` at SMALL on the CPU, made once for the tests that
    only segment with it: the ONNX Runtime one exports the network to ONNX when
    made (a second or two each time). Its own cache folder, like every test's (``_cache``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BISESTDC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return {"onnxruntime": Segmenter(weights=checkpoint, engine="onnxruntime", device="cpu",
                                         network_size=SMALL),
                "torch": Segmenter(weights=checkpoint, engine="torch", device="cpu",
                                   network_size=SMALL)}


def test_available_engines_reports_each():
    engines = available_engines()
    assert set(engines) == {"tensorrt", "torch", "onnxruntime"}
    assert engines["onnxruntime"].startswith("available")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU choice")
def test_auto_on_cpu_picks_onnxruntime_and_logs_why(checkpoint, caplog):
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.segmenter"):
        seg = Segmenter(weights=checkpoint, network_size=SMALL)
    assert seg.engine_name == "onnxruntime" and seg.device == "cpu"
    assert seg.precision == "fp32" and seg.network_size == SMALL
    assert seg.class_set is CITYSCAPES
    text = caplog.text
    assert "auto -> onnxruntime" in text and "tensorrt:" in text and "torch:" in text


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_labels_at_frame_size_and_timings(cpu_segmenters, engine):
    seg = cpu_segmenters[engine]
    assert seg.engine_name == engine
    for height, width in [(128, 256), (100, 170), (240, 320)]:
        res = seg.segment(realistic_frames(1, height, width)[0], with_confidence=True)
        assert isinstance(res, SegmentationResult)
        assert res.labels.shape == (height, width) and res.labels.dtype == np.uint8
        assert res.confidence.shape == (height, width) and res.confidence.dtype == np.uint8
        measured = res.timings.measured()
        assert set(measured) == STAGES
        assert all(isinstance(v, float) and v >= 0 for v in measured.values())
        assert res.labels.max() < 19
    assert seg.segment(realistic_frames(1)[0]).confidence is None


@pytest.mark.slow
def test_engines_agree_and_channel_order(cpu_segmenters):
    ort_seg, torch_seg = cpu_segmenters["onnxruntime"], cpu_segmenters["torch"]
    agree = total = 0
    for frame in realistic_frames(3, 150, 260, seed=5):
        a = ort_seg.segment(frame).labels
        b = torch_seg.segment(frame).labels
        agree += int((a == b).sum())
        total += a.size
        bgr = np.ascontiguousarray(frame[..., ::-1])
        assert np.array_equal(ort_seg.segment(bgr, channel_order="bgr").labels, a)
        assert np.array_equal(torch_seg.segment(bgr, channel_order="bgr").labels, b)
    assert agree / total >= 0.999


@pytest.mark.slow
def test_onnx_input_and_seed_weights(checkpoint, cpu_segmenters, tmp_path):
    from bisestdc_core.cli import export

    onnx_path = tmp_path / "m.onnx"
    export.main(["--weights", str(checkpoint), "--network-size", *map(str, SMALL),
                 "--out", str(onnx_path), "--channel-order", "bgr"])
    seg = Segmenter(onnx=onnx_path)
    assert seg.engine_name == "onnxruntime" and seg.network_size == SMALL
    ref = cpu_segmenters["onnxruntime"]
    exact = realistic_frames(1)[0]  # at the graph's fixed input size: no host resize
    assert (seg.segment(exact).labels == ref.segment(exact).labels).mean() >= 0.999
    # Other sizes are resized on the host (OpenCV, uint8) first; shapes still follow the frame.
    frame = realistic_frames(1, 90, 200)[0]
    assert seg.segment(frame).labels.shape == (90, 200)
    with pytest.raises(RuntimeError, match="no confidence output"):
        seg.segment(frame, with_confidence=True)
    # A bare state dict is a seed-style checkpoint: described by model_name/num_classes.
    seed = tmp_path / "seed.pth"
    torch.save(torch.load(checkpoint, weights_only=True)["state_dict"], seed)
    seg = Segmenter(weights=seed, model_name="stdc1", engine="torch", device="cpu",
                    network_size=(64, 128))
    assert seg.segment(frame).labels.shape == (90, 200)


@pytest.mark.slow
def test_clear_errors(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="weights file not found"):
        Segmenter(weights=tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="engine must be"):
        Segmenter(weights=checkpoint, engine="tflite")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            Segmenter(weights=checkpoint, device="cuda")
        with pytest.raises(RuntimeError, match="install TensorRT"):
            Segmenter(weights=checkpoint, engine="tensorrt")
    seg = Segmenter(weights=checkpoint, engine="torch", device="cpu", network_size=(64, 128))
    with pytest.raises(ValueError, match="uint8"):
        seg.segment(np.zeros((64, 128, 3), np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        seg.segment(np.zeros((64, 128), np.uint8))
    with pytest.raises(ValueError, match="channel order"):
        seg.segment(np.zeros((64, 128, 3), np.uint8), channel_order="yuv")
    with pytest.raises(ValueError, match="class set"):
        Segmenter(weights=checkpoint, engine="torch", device="cpu", class_set="camvid")


@pytest.mark.gpu
def test_torch_cuda_fp16_graph_matches_fp32(checkpoint):
    fp32 = Segmenter(weights=checkpoint, engine="torch", device="cuda", precision="fp32",
                     network_size=SMALL)
    fp16 = Segmenter(weights=checkpoint, engine="torch", device="cuda", precision="fp16",
                     network_size=SMALL)
    for frame in realistic_frames(3, 200, 400):
        a, b = fp32.segment(frame).labels, fp16.segment(frame).labels
        assert a.shape == (200, 400) and (a == b).mean() > 0.99
