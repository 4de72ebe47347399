"""``bisestdc-export --tensorrt --precision int8`` builds from the QDQ graph (explicit
quantization) by default and from the float graph with the calibrator only with
``--int8-calibration implicit``; the TensorRT flags reach the build. The quantizer and the
engine build are STAND-INS here (recorded calls): their own tests cover them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bisestdc_core.cli import export
from bisestdc_core.inference.onnxruntime import quantize
from bisestdc_core.inference.tensorrt import build


@pytest.fixture
def recorded(monkeypatch):
    calls = {"quantized": [], "built": []}

    def stand_in_quantize(fp32_path, out, *, target, **kwargs):
        calls["quantized"].append((Path(fp32_path), Path(out), target))
        Path(out).write_bytes(b"qdq")
        return {"quantization": {"float_layers": []}}

    def stand_in_ensure_engine(onnx_path, engine_path=None, precision="fp16", **kwargs):
        calls["built"].append((Path(onnx_path), precision, kwargs["options"]))
        return Path(engine_path)

    monkeypatch.setattr(quantize, "quantize_from_sources", stand_in_quantize)
    monkeypatch.setattr(build, "ensure_engine", stand_in_ensure_engine)
    return calls


def _export(tmp_path, *extra):
    out = tmp_path / "m.onnx"
    code = export.main(["--model", "stdc1", "--network-size", "64", "128", "--out", str(out),
                        "--tensorrt", "--precision", "int8", *extra])
    return code, out


@pytest.mark.slow
def test_int8_engine_is_built_from_a_qdq_graph_for_tensorrt(recorded, tmp_path):
    code, out = _export(tmp_path, "--timing-cache", str(tmp_path / "t.cache"),
                        "--workspace-mb", "512")
    assert code == 0
    trt_graph = tmp_path / "m.int8-tensorrt.onnx"
    assert recorded["quantized"] == [(out, tmp_path / "m.int8.onnx", "onnxruntime"),
                                     (out, trt_graph, "tensorrt")]
    (source, precision, options), = recorded["built"]
    assert (source, precision, options.int8_calibration) == (trt_graph, "int8", "qdq")
    assert (options.timing_cache, options.workspace_mb) == (str(tmp_path / "t.cache"), 512)


@pytest.mark.slow
def test_one_qdq_graph_when_the_target_is_tensorrt(recorded, tmp_path):
    code, out = _export(tmp_path, "--int8-target", "tensorrt", "--dla-core", "1")
    assert code == 0
    assert recorded["quantized"] == [(out, tmp_path / "m.int8.onnx", "tensorrt")]
    (source, _, options), = recorded["built"]
    assert source == tmp_path / "m.int8.onnx" and options.dla_core == 1


@pytest.mark.slow
def test_implicit_calibration_builds_from_the_float_graph(recorded, tmp_path):
    images = tmp_path / "frames"
    images.mkdir()
    cv2.imwrite(str(images / "0.png"), np.zeros((32, 32, 3), np.uint8))
    code, out = _export(tmp_path, "--int8-calibration", "implicit", "--calib-images",
                        str(images))
    assert code == 0
    assert [target for *_, target in recorded["quantized"]] == ["onnxruntime"]
    (source, _, options), = recorded["built"]
    assert source == out and options.int8_calibration == "implicit"


def test_a_bad_tensorrt_flag_is_one_line(recorded, tmp_path, capsys):
    code, _ = _export(tmp_path, "--dla-core", "-3")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "dla_core must be -1 (GPU) or a DLA core" in err[0]
    assert recorded["built"] == []
