"""ONNX export with in-graph pre/post-processing; agreement with PyTorch; the export CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from inference_helpers import (
    SMALL,
    cityscapes_card,
    export_graph,
    nondegenerate_model,
    realistic_frames,
)
from onnx_graphs import uint8_transpose_model

from bisestdc_core.artefacts import file_sha256, sidecar_path
from bisestdc_core.cli import export
from bisestdc_core.inference.model_files import describe, read_sidecar
from bisestdc_core.inference.torch_engine import TorchEngine
from bisestdc_core.model_card import ModelCard


@pytest.fixture(scope="module")
def model():
    return nondegenerate_model("stdc1")


def _export(model, path, **kw):
    return export_graph(model, path, **kw)


# Exports that several tests only read, made once for the module (about a second each).
@pytest.fixture(scope="module")
def fixed_confidence(model, tmp_path_factory):
    """(path, card) of the fixed-size RGB export with a confidence output."""
    path = tmp_path_factory.mktemp("fixed") / "m.onnx"
    return path, _export(model, path, confidence=True)


@pytest.fixture(scope="module")
def dynamic(model, tmp_path_factory):
    """The dynamic-size RGB export, labels at the network size."""
    path = tmp_path_factory.mktemp("dynamic") / "dyn_net.onnx"
    _export(model, path, dynamic=True)
    return path


def _run(path, frame):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": frame[None]})


@pytest.mark.slow
def test_fixed_export_checker_dtype_shape_and_sidecar(fixed_confidence):
    path, card = fixed_confidence
    onnx.checker.check_model(str(path))
    graph = onnx.load(str(path)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    labels, conf = _run(path, realistic_frames(1)[0])
    assert labels.dtype == np.uint8 and labels.shape == (1, *SMALL)
    assert conf.dtype == np.uint8 and conf.shape == (1, *SMALL)
    assert conf.min() >= 255 // 19  # max softmax prob >= 1 / C
    side = json.loads(sidecar_path(path).read_text())
    assert ModelCard.from_dict(side, "m.onnx.json") == card == describe(path)
    assert side["opset"] == 17 and side["channel_order"] == "rgb" and side["precision"] == "fp32"
    assert side["network_size"] == list(SMALL) and side["sha256"] == file_sha256(path)
    assert side["outputs"] == ["labels", "confidence"] and card.input_size == SMALL
    assert side["classes"][0] == "road"


@pytest.mark.slow
def test_dynamic_export_labels_at_input_size(model, dynamic, tmp_path):
    path = tmp_path / "dyn.onnx"
    _export(model, path, dynamic=True, labels_at_input_size=True)
    frame = realistic_frames(1, 100, 180)[0]
    (labels,) = _run(path, frame)
    assert labels.shape == (1, 100, 180) and labels.dtype == np.uint8
    # Same frame through a network-size-output export, nearest-resized: the same labels.
    (small,) = _run(dynamic, frame)
    assert small.shape == (1, *SMALL)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(small)[:, None].float(), size=(100, 180), mode="nearest")
    assert (resized[0, 0].numpy().astype(np.uint8) == labels[0]).mean() > 0.999


@pytest.mark.slow
def test_rgb_and_bgr_exports_agree(model, fixed_confidence, tmp_path):
    """The BGR export of the module's RGB one (both with confidence): labels and confidence
    alike on the flipped frame."""
    rgb_path, _ = fixed_confidence
    _export(model, tmp_path / "bgr.onnx", channel_order="bgr", confidence=True)
    frame = realistic_frames(1, seed=3)[0]
    rgb = _run(rgb_path, frame)
    bgr = _run(tmp_path / "bgr.onnx", np.ascontiguousarray(frame[..., ::-1]))
    assert len(rgb) == len(bgr) == 2
    assert all(np.array_equal(a, b) for a, b in zip(rgb, bgr))
    wrong = _run(tmp_path / "bgr.onnx", frame)  # not flipped: a different image
    assert not np.array_equal(rgb[0], wrong[0])


@pytest.mark.slow
def test_onnxruntime_agrees_with_torch_fp32(model, dynamic):
    path = dynamic
    engine = TorchEngine(model, cityscapes_card("stdc1"), device="cpu")
    frames = realistic_frames(6, seed=7) + realistic_frames(2, 96, 200, seed=8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    agree = total = 0
    classes = set()
    for frame in frames:
        (onnx_labels,) = session.run(None, {"image": frame[None]})
        torch_labels = engine.infer(frame, "rgb", False).labels
        # torch engine returns frame-size labels; compare at network size via the same rule
        onnx_at_frame = torch.nn.functional.interpolate(
            torch.from_numpy(onnx_labels)[:, None].float(), size=frame.shape[:2],
            mode="nearest")[0, 0].numpy().astype(np.uint8)
        agree += int((onnx_at_frame == torch_labels).sum())
        total += torch_labels.size
        classes.update(np.unique(torch_labels).tolist())
    assert len(classes) > 1, "degenerate network: one class everywhere"
    assert agree / total >= 0.999


@pytest.mark.slow
def test_cli_help_and_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        export.main(["--help"])
    assert info.value.code == 0
    assert "--tensorrt" in capsys.readouterr().out
    out = tmp_path / "cli.onnx"
    assert export.main(["--model", "stdc1", "--network-size", "64", "128", "--out", str(out),
                        "--channel-order", "bgr", "--confidence"]) == 0
    side = read_sidecar(out)
    assert side["channel_order"] == "bgr" and side["input"]["shape"] == [1, 64, 128, 3]
    assert describe(out).input_size == (64, 128)


@pytest.mark.slow
def test_cli_tensorrt_without_tensorrt_says_what_to_install(tmp_path):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="install TensorRT"):
        export.main(["--model", "stdc1", "--network-size", "64", "128",
                     "--out", str(tmp_path / "t.onnx"), "--tensorrt"])


def test_engine_beside_the_onnx_unless_the_cache_is_asked_for(tmp_path):
    out = tmp_path / "bisestdc.onnx"
    assert export.engine_path(out, None, False) == tmp_path / "bisestdc.engine"
    assert export.engine_path(out, tmp_path / "x.plan", False) == tmp_path / "x.plan"
    assert export.engine_path(out, None, True) is None  # ensure_engine picks the cache path


@pytest.mark.slow
def test_cli_check_tensorrt(model, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    _export(model, path, dynamic=True, confidence=True, labels_at_input_size=True)
    assert export.main(["--check-tensorrt", str(path)]) == 0
    out = capsys.readouterr().out
    for version in ("8.5", "8.6", "10"):
        assert f"TensorRT {version} ONNX parser rules: accepted" in out
    assert "installed TensorRT parser:" in out and "Python 3." in out
    old = tmp_path / "old.onnx"
    onnx.save(uint8_transpose_model(), str(old))
    assert export.main(["--check-tensorrt", str(old)]) == 1
    out = capsys.readouterr().out
    assert "TensorRT 8.6 ONNX parser rules: rejected (2 problems)" in out
    assert "uint8 input 'image' feeds Transpose" in out
    assert export.main(["--check-tensorrt", str(tmp_path / "none.onnx")]) == 2
    assert "error: --check-tensorrt: ONNX file not found" in capsys.readouterr().err
