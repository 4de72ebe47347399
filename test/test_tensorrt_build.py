"""Engine builds and the engine cache with STAND-INS for tensorrt and pycuda (neither can be
installed here): which int8 path a build takes (QDQ graph vs calibrator), the cache healing a
damaged or stale engine, the persistent timing cache, DLA, build progress, and the refusal of
a TensorRT request without a model. The stand-in builder records what the code configured;
the names it offers are those of the TensorRT Python API (test_tensorrt_api.py checks them
against the bindings' sources)."""

from __future__ import annotations

import json
import logging
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from inference_helpers import export_graph
from onnx_graphs import qdq_model
from test_tensorrt_failures import GPU, NETWORK_SIZE, StandInLogger, stand_in_pycuda

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.inference import Segmenter
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.model_files import read_engine_sidecar
from bisestdc_core.inference.registry import EngineRequest
from bisestdc_core.inference.tensorrt import build, factory, platform, qdq_source
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.models import build_model


class StandInConfig:
    """Stand-in ``IBuilderConfig``: records flags, limits, device, calibrator, timing cache."""

    def __init__(self, log):
        self.flags, self.log, self.profiles = set(), log, []
        self.int8_calibrator = None
        self.default_device_type = "GPU"
        self.DLA_core = -1
        self._timing = None

    def set_memory_pool_limit(self, pool, size):
        self.log["workspace"] = (pool, size)

    def set_flag(self, flag):
        self.flags.add(flag)

    def add_optimization_profile(self, profile):
        self.profiles.append(profile)

    def set_calibration_profile(self, profile):
        self.log["calibration_profile"] = profile

    def create_timing_cache(self, data):
        self.log.setdefault("timing_loaded", []).append(bytes(data))
        return types.SimpleNamespace(serialize=lambda: b"timings:" + bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        self._timing = cache
        return not ignore_mismatch

    def get_timing_cache(self):
        return self._timing


class StandInBuilder:
    num_DLA_cores = 0
    platform_has_fast_fp16 = True
    platform_has_fast_int8 = True

    def __init__(self, logger):
        self.logger = logger
        self.log = StandInBuilder.log

    def create_network(self, flags):
        self.log["network_flags"] = flags
        tensor = types.SimpleNamespace(name="image", shape=(1, *NETWORK_SIZE, 3))
        return types.SimpleNamespace(num_inputs=1, get_input=lambda i: tensor)

    def create_builder_config(self):
        self.log["config"] = StandInConfig(self.log)
        return self.log["config"]

    def create_optimization_profile(self):
        return types.SimpleNamespace(set_shape=lambda *a: None)

    def build_serialized_network(self, network, config):
        self.log["builds"] = self.log.get("builds", 0) + 1
        calibrator = config.int8_calibrator
        if calibrator is not None:  # TensorRT pulls batches until None
            while calibrator.get_batch(["image"]) is not None:
                self.log["calibration_batches"] = self.log.get("calibration_batches", 0) + 1
        monitor = getattr(config, "progress_monitor", None)
        if monitor is not None:
            monitor.phase_start("Building engine", None, 10)
            for step in range(10):
                monitor.step_complete("Building engine", step)
            monitor.phase_finish("Building engine")
        return b"stand-in engine built #%d" % self.log["builds"]


def stand_in_builder_tensorrt(version: str, dla_cores: int = 0) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    StandInBuilder.log = {}
    StandInBuilder.num_DLA_cores = dla_cores

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            return True

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    trt.Logger, trt.Builder, trt.OnnxParser = StandInLogger, StandInBuilder, OnnxParser
    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2
    if platform.has_progress_monitor(version):
        class IProgressMonitor:
            def __init__(self):
                pass

        trt.IProgressMonitor = IProgressMonitor
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", INT8="INT8",
                                            GPU_FALLBACK="GPU_FALLBACK")
    trt.DeviceType = types.SimpleNamespace(GPU="GPU", DLA="DLA")
    trt.log = StandInBuilder.log
    return trt


@pytest.fixture
def stand_ins(monkeypatch, tmp_path):
    """stand_ins(version, dla_cores) injects the stand-ins; returns the builder's log."""
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))
    platform.trt_logger.cache_clear()

    def _inject(version="10.0.1", dla_cores=0):
        cuda = stand_in_pycuda({})
        cuda.memcpy_htod = lambda device, host: None
        package = types.ModuleType("pycuda")
        package.driver = cuda
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
        trt = stand_in_builder_tensorrt(version, dla_cores)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt.log

    yield _inject
    platform.trt_logger.cache_clear()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_graph(build_model("stdc1", 19).eval(), path, network_size=NETWORK_SIZE)
    return path


@pytest.fixture(scope="module")
def qdq_file(onnx_file, tmp_path_factory):
    """An explicitly quantized graph with the export's sidecar (the stand-in parser accepts
    any bytes; what matters is that the graph has Q/DQ nodes)."""
    path = tmp_path_factory.mktemp("qdq") / "m.int8.onnx"
    onnx.save(qdq_model(), str(path))
    sidecar_path(path).write_text(sidecar_path(onnx_file).read_text())
    return path


@pytest.fixture
def images(tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 60, 3), 40 * i, np.uint8))
    return folder


# ---- int8: the QDQ graph by default, the calibrator only when asked -----------------------

@pytest.mark.slow
def test_int8_from_a_qdq_graph_builds_without_a_calibrator(stand_ins, qdq_file, tmp_path):
    log = stand_ins("10.3.0")
    engine = build.ensure_engine(qdq_file, tmp_path / "q.engine", "int8")
    config = log["config"]
    assert config.int8_calibrator is None and {"INT8", "FP16"} <= config.flags
    scales = read_engine_sidecar(engine)["int8_scales"]
    assert scales["quantization"] == "explicit" and len(scales["qdq_sha256"]) == 64


def test_implicit_calibration_only_with_the_flag(stand_ins, onnx_file, images, tmp_path,
                                                 caplog):
    log = stand_ins("8.6.1")
    source = CalibrationSource(images=images, count=2)
    with pytest.raises(ValueError, match="m.onnx is a float graph"):
        build.ensure_engine(onnx_file, tmp_path / "a.engine", "int8", calibration=source)
    assert "builds" not in log  # refused before any build
    with caplog.at_level(logging.WARNING):
        engine = build.ensure_engine(onnx_file, tmp_path / "b.engine", "int8",
                                     calibration=source,
                                     options=TensorRTOptions(int8_calibration="implicit"))
    assert log["config"].int8_calibrator is not None and log["calibration_batches"] == 2
    assert any("implicit int8 calibration (deprecated" in r.getMessage() for r in caplog.records)
    assert read_engine_sidecar(engine)["int8_scales"] == {
        "quantization": "implicit", "source": {"images": str(images), "count": 2}}


def test_the_factory_quantizes_a_float_graph_for_tensorrt_by_default(
        stand_ins, onnx_file, qdq_file, images, monkeypatch):
    log = stand_ins("10.3.0")
    made = []

    def fake_qdq(path, calibration):  # stands in for the (slow) ONNX Runtime quantizer
        made.append((path, calibration))
        return qdq_file

    monkeypatch.setattr(qdq_source, "qdq_graph_for", fake_qdq)
    monkeypatch.setattr(factory, "TensorRTEngine", lambda path, index, options: path)
    source = CalibrationSource(images=images, count=2)
    request = EngineRequest(weights=None, onnx=onnx_file, engine_path=None,
                            explicit="tensorrt", device="cuda", precision="int8",
                            network_size=None, model_name="stdc1", num_classes=19,
                            calibration=source)
    engine = factory.build(request)
    assert made == [(onnx_file, source)] and log["config"].int8_calibrator is None
    assert read_engine_sidecar(engine)["onnx_path"] == str(qdq_file)
    implicit = EngineRequest(**{**request.__dict__, "_network": None,
                                "tensorrt": TensorRTOptions(int8_calibration="implicit")})
    factory.build(implicit)
    assert len(made) == 1 and log["config"].int8_calibrator is not None


# ---- the cache heals ------------------------------------------------------------------------

def test_a_truncated_engine_with_a_valid_sidecar_is_rebuilt(stand_ins, onnx_file, tmp_path,
                                                            caplog):
    log = stand_ins()
    path = tmp_path / "m.engine"
    build.ensure_engine(onnx_file, path, "fp16")
    sidecar = read_engine_sidecar(path)
    assert sidecar["engine_size"] == path.stat().st_size and len(sidecar["engine_sha256"]) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    build.ensure_engine(onnx_file, path, "fp16")
    assert log["builds"] == 1  # valid: reused
    path.write_bytes(path.read_bytes()[:5])
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.tensorrt.build"):
        build.ensure_engine(onnx_file, path, "fp16")
    rebuilt = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
    assert log["builds"] == 2 and len(rebuilt) == 1
    assert "engine file is 5 bytes, its sidecar says" in rebuilt[0]
    same_size = bytearray(path.read_bytes())
    same_size[0] ^= 0xFF
    path.write_bytes(bytes(same_size))
    assert build.cache_status(path, {k: v for k, v in read_engine_sidecar(path).items()}) == [
        "engine file sha256 differs from its sidecar's (damaged or replaced)"]


def test_build_settings_are_in_the_key(stand_ins, onnx_file, tmp_path, caplog):
    log = stand_ins()
    path = tmp_path / "m.engine"
    build.ensure_engine(onnx_file, path, "fp16")
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.tensorrt.build"):
        build.ensure_engine(onnx_file, path, "fp16", options=TensorRTOptions(workspace_mb=512))
    assert log["builds"] == 2 and log["workspace"] == ("WORKSPACE", 512 << 20)
    assert any("workspace_mb: 2048 -> 512" in r.getMessage() for r in caplog.records)
    key = read_engine_sidecar(path)
    assert (key["tensorrt_version"], key["compute_capability"], key["dla_core"]) == (
        "10.0.1", GPU["compute_capability"], -1)


# ---- timing cache, DLA, progress ------------------------------------------------------------

def test_the_timing_cache_persists_between_builds(stand_ins, onnx_file, tmp_path):
    log = stand_ins()
    build.ensure_engine(onnx_file, None, "fp16")
    cache = tmp_path / "cache" / "tensorrt" / "timing-stand-in-gpu-sm87-trt10.0.1.cache"
    assert cache.read_bytes() == b"timings:" and log["timing_loaded"] == [b""]
    build.ensure_engine(onnx_file, None, "fp32")  # another engine, same GPU: same cache
    assert log["timing_loaded"][-1] == b"timings:"
    mine = tmp_path / "mine.cache"
    build.ensure_engine(onnx_file, None, "fp32",
                        options=TensorRTOptions(timing_cache=str(mine), workspace_mb=64))
    assert mine.read_bytes() == b"timings:"


def test_dla_core_is_refused_without_a_dla_and_configured_with_one(stand_ins, onnx_file,
                                                                   tmp_path):
    stand_ins(dla_cores=0)
    with pytest.raises(platform.TensorRTUnavailable,
                       match=r"DLA set-up failed .*dla_core 0 asked for, but this device has "
                             r"no DLA cores; use dla_core -1"):
        build.ensure_engine(onnx_file, tmp_path / "d.engine", "fp16",
                            options=TensorRTOptions(dla_core=0))
    log = stand_ins(dla_cores=2)
    engine = build.ensure_engine(onnx_file, None, "fp16", options=TensorRTOptions(dla_core=1))
    config = log["config"]
    assert (config.default_device_type, config.DLA_core) == ("DLA", 1)
    assert "GPU_FALLBACK" in config.flags and "-dla1-" in engine.name


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_build_progress_is_logged(stand_ins, onnx_file, tmp_path, caplog, version):
    log = stand_ins(version)
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.tensorrt"):
        build.ensure_engine(onnx_file, tmp_path / "p.engine", "fp16")
    messages = [r.getMessage() for r in caplog.records]
    if platform.has_progress_monitor(version):
        assert log["config"].progress_monitor is not None
        assert "TensorRT build: Building engine started, 10 steps" in messages
        assert "TensorRT build: Building engine 5/10" in messages
        assert "TensorRT build: Building engine finished" in messages
    else:
        assert not hasattr(log["config"], "progress_monitor")
        assert any(m.startswith("TensorRT build finished after") for m in messages)
    assert any(m.startswith("building TensorRT fp16 engine") for m in messages)


# ---- never an engine from random weights ----------------------------------------------------

def test_explicit_tensorrt_without_a_model_is_refused_in_one_line(stand_ins, monkeypatch):
    stand_ins()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(RuntimeError, match=r"engine tensorrt failed: TensorRT engine request "
                                           r"failed: .*pass weights:=\.\.\. or onnx:=\.\.\. or "
                                           r"engine_path:=\.\.\.") as caught:
        Segmenter(engine="tensorrt", device="cuda")
    assert isinstance(caught.value.__cause__, platform.TensorRTUnavailable)
    assert "\n" not in str(caught.value)


def test_auto_without_a_model_passes_tensorrt_over_with_the_reason(stand_ins):
    stand_ins()
    request = EngineRequest(weights=None, onnx=None, engine_path=None, explicit="auto",
                            device="cuda", precision="fp16", network_size=None,
                            model_name="stdc1", num_classes=19)
    assert factory.unavailable_reason(request) == factory.NO_MODEL
    assert "weights:=... or onnx:=... or engine_path:=..." in factory.NO_MODEL
    with pytest.raises(platform.TensorRTUnavailable, match="engine request failed"):
        factory.build(request)


def test_the_sidecar_is_json_with_the_onnx_card(stand_ins, onnx_file, tmp_path):
    stand_ins()
    path = build.ensure_engine(onnx_file, tmp_path / "m.engine", "fp16")
    data = json.loads(sidecar_path(path).read_text())
    assert data["format"] == "bisestdc-tensorrt" and data["onnx_path"] == str(onnx_file)
