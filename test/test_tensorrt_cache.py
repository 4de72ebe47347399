"""TensorRT engine cache key and staleness, version dispatch (pure Python), and the
missing-TensorRT message."""

from __future__ import annotations

import json

import pytest

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.inference.model_files import ENGINE_SIDECAR_FORMAT
from bisestdc_core.inference.tensorrt import build, cache_key, platform, runtime

GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
ORIN = {"name": "Orin", "compute_capability": (8, 7)}
INT8_EXPLICIT = {"precision": "int8", "int8_scales": {"quantization": "explicit",
                                                      "qdq_sha256": "ef" * 32}}
INT8_IMPLICIT = {"precision": "int8", "int8_scales": {"quantization": "implicit",
                                                      "source": {"images": "/f", "count": 8}}}


def _key(**over):
    args = dict(onnx_sha256="ab" * 32, gpu=GPU, tensorrt_version="10.3.0", precision="fp16",
                input_shape=(1, 512, 1024, 3))
    args.update(over)
    return cache_key.engine_cache_key(**args)


def test_same_inputs_same_key_and_valid():
    assert _key() == _key()
    assert cache_key.stale_fields(_key(), _key()) == []


@pytest.mark.parametrize(("over", "field"), [
    ({"onnx_sha256": "cd" * 32}, "onnx_sha256"),
    ({"gpu": {"name": "Orin", "compute_capability": [9, 0]}}, "gpu_name"),
    ({"gpu": {"name": GPU["name"], "compute_capability": [8, 9]}}, "compute_capability"),
    ({"tensorrt_version": "8.6.1"}, "tensorrt_version"),
    ({"precision": "fp32"}, "precision"),
    ({"workspace_mb": 4096}, "workspace_mb"),
    ({"dla_core": 0}, "dla_core"),
    ({"input_shape": (1, 768, 1536, 3)}, "input_shape"),
])
def test_each_changed_field_is_named(over, field):
    reasons = cache_key.stale_fields(_key(), _key(**over))
    assert len(reasons) == 1 and reasons[0].startswith(field + ":")


def test_gpu_change_reason_shows_both_values():
    reasons = cache_key.stale_fields(_key(), _key(gpu=ORIN))
    assert reasons == ["gpu_name: 'NVIDIA H100 80GB HBM3' -> 'Orin'",
                       "compute_capability: [9, 0] -> [8, 7]"]


def test_missing_sidecar_or_field_is_stale(tmp_path):
    assert cache_key.stale_fields(None, _key()) == ["no cache sidecar"]
    partial = {k: v for k, v in _key().items() if k != "precision"}
    assert cache_key.stale_fields(partial, _key()) == ["precision: missing from sidecar"]
    engine = tmp_path / "m.engine"
    assert cache_key.cache_status(engine, _key()) == ["no engine file"]
    engine.write_bytes(b"x")
    assert cache_key.cache_status(engine, _key()) == ["no cache sidecar"]
    sidecar_path(engine).write_text(json.dumps({"format": ENGINE_SIDECAR_FORMAT, **_key()}))
    assert cache_key.cache_status(engine, _key()) == []
    assert cache_key.cache_status(engine, _key(precision="fp32")) == ["precision: 'fp16' -> 'fp32'"]


def test_default_engine_path_differs_per_key(tmp_path):
    paths = {cache_key.default_engine_path(tmp_path, _key(**o)) for o in
             ({}, {"precision": "fp32"}, {"gpu": ORIN}, {"tensorrt_version": "8.6.1"},
              {"workspace_mb": 1024}, {"dla_core": 1}, INT8_EXPLICIT, INT8_IMPLICIT)}
    assert len(paths) == 8


def test_bad_precision_rejected():
    with pytest.raises(ValueError, match="precision"):
        _key(precision="bf16")


def test_without_tensorrt_clear_install_message(tmp_path):
    ok, reason = platform.tensorrt_available()
    if ok:
        pytest.skip("TensorRT is installed here")
    assert "install TensorRT 8.5+" in reason and "pycuda" in reason
    with pytest.raises(RuntimeError, match=r"TensorRT Python bindings not found: install"):
        build.build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", "fp16", (1, 64, 128, 3))
    with pytest.raises(RuntimeError, match="install TensorRT"):
        runtime.TensorRTRunner(tmp_path / "m.engine")


@pytest.mark.parametrize(("version", "tensor_api", "explicit_batch_flag", "rules"), [
    ("8.4.3.1", False, True, None),
    ("8.5.2.2", True, True, "8.5"),   # JetPack 5.1
    ("8.6.1.6", True, True, "8.6"),
    ("9.2.0", True, True, None),
    ("10.3.0", True, False, "10"),    # JetPack 6
    ("10.13.2.6", True, False, "10"),
])
def test_version_dispatch(version, tensor_api, explicit_batch_flag, rules):
    assert platform.uses_tensor_api(version) is tensor_api
    assert platform.needs_explicit_batch_flag(version) is explicit_batch_flag
    assert platform.rules_version(version) == rules


def test_unparsable_version_is_named():
    with pytest.raises(ValueError, match="not a TensorRT version: 'abc'"):
        platform.parse_version("abc")


def test_installed_lines_say_what_is_missing():
    lines = platform.installed_lines()
    assert lines[0].startswith("Python 3.")
    ok, _ = platform.tensorrt_available()
    if ok:
        pytest.skip("TensorRT is installed here")
    assert any(line.startswith("TensorRT: not importable") for line in lines)
