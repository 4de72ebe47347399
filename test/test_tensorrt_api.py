"""The TensorRT Python API names the engine code uses exist in the versions it dispatches them to.

TensorRT cannot be installed here, so the names are checked against the Python bindings'
sources (every module of the ``bisestdc_core.inference.tensorrt`` subpackage is scanned):
NVIDIA/TensorRT (https://github.com/NVIDIA/TensorRT) at ``release/8.5`` (68b5072f),
``release/8.6`` (a0215c1a) and ``release/10.0`` (ccf11997), where every Python name is a quoted
string in ``python/src/**.cpp`` (``nptype`` is a Python function in the package's
``tensorrt/__init__.py``). The table lists, per name, the file that defines it and the versions
whose sources contain it; a name the code uses that the table lacks fails the test, so a new
TensorRT call must be looked up before it is used. The build progress monitor
(``IProgressMonitor``, ``IBuilderConfig.progress_monitor``) is TensorRT 10 only (absent from
the 8.x bindings) and used only behind :func:`.platform.has_progress_monitor`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

from bisestdc_core.inference import tensorrt
from bisestdc_core.inference.tensorrt import builder_config, platform

ALL = frozenset({"8.5", "8.6", "10.0"})
BEFORE_10 = frozenset({"8.5", "8.6"})
SINCE_10 = frozenset({"10.0"})
CORE, GRAPH, INT8 = "python/src/infer/pyCore.cpp", "python/src/infer/pyGraph.cpp", \
    "python/src/infer/pyInt8.cpp"
ONNX, PACKAGE = "python/src/parsers/pyOnnx.cpp", "tensorrt/__init__.py"

# name -> (defining file, versions whose bindings define it)
DEFINED: dict[str, tuple[str, frozenset[str]]] = {
    **{name: (CORE, ALL) for name in (
        "Logger", "WARNING", "Builder", "create_network", "NetworkDefinitionCreationFlag",
        "EXPLICIT_BATCH", "BuilderFlag", "FP16", "INT8", "MemoryPoolType", "WORKSPACE",
        "add_optimization_profile", "build_serialized_network", "create_builder_config",
        "create_optimization_profile", "int8_calibrator", "platform_has_fast_fp16",
        "set_calibration_profile", "set_flag", "set_memory_pool_limit", "set_shape", "Runtime",
        "TensorIOMode", "INPUT", "create_execution_context", "deserialize_cuda_engine",
        "execute_async_v3", "get_tensor_dtype", "get_tensor_mode", "get_tensor_name",
        "get_tensor_profile_shape", "get_tensor_shape", "num_io_tensors", "set_input_shape",
        "set_tensor_address",
        # fast-precision facts, DLA, the timing cache, the layer profiler
        "platform_has_fast_int8", "num_DLA_cores", "DeviceType", "DLA", "GPU_FALLBACK",
        "default_device_type", "DLA_core", "create_timing_cache", "set_timing_cache",
        "get_timing_cache", "serialize", "IProfiler", "report_layer_time", "profiler")},
    # build progress: TensorRT 10's IProgressMonitor
    **{name: (CORE, SINCE_10) for name in (
        "IProgressMonitor", "progress_monitor", "phase_start", "step_complete",
        "phase_finish")},
    # the bindings API: gone from the 10.0 bindings
    **{name: (CORE, BEFORE_10) for name in (
        "execute_async_v2", "binding_is_input", "get_binding_dtype", "get_binding_name",
        "get_binding_shape", "get_profile_shape", "num_bindings", "set_binding_shape")},
    **{name: (GRAPH, ALL) for name in ("get_input", "num_inputs", "name", "shape")},
    **{name: (ONNX, ALL) for name in ("OnnxParser", "parse", "num_errors", "get_error")},
    **{name: (INT8, ALL) for name in (
        "IInt8EntropyCalibrator2", "get_batch_size", "get_batch", "read_calibration_cache",
        "write_calibration_cache")},
    "nptype": (PACKAGE, ALL),
}
# Objects that come from TensorRT in the subpackage (attributes of anything else are numpy,
# pycuda, cuda-python or the standard library).
TRT_OBJECTS = {"trt", "engine", "context", "builder", "network", "parser", "config", "profile",
               "tensor", "timings", "self._runtime", "self.engine", "self.context"}
CALIBRATOR_OVERRIDES = {"get_batch_size", "get_batch", "read_calibration_cache",
                        "write_calibration_cache"}
PROFILER_OVERRIDES = {"report_layer_time"}
PROGRESS_OVERRIDES = {"phase_start", "step_complete", "phase_finish"}
# Pure Python: no TensorRT object in them.
NOT_SCANNED = {"parser_rules", "options"}


def _modules():
    return [importlib.import_module(f"{tensorrt.__name__}.{info.name}")
            for info in pkgutil.iter_modules(tensorrt.__path__) if info.name not in NOT_SCANNED]


def _source() -> str:
    return "\n".join(inspect.getsource(module) for module in _modules())


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return f"self.{node.attr}"
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _tensorrt_names(function: ast.AST) -> set[str]:
    return {node.attr for node in ast.walk(function)
            if isinstance(node, ast.Attribute) and _root(node) in TRT_OBJECTS
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            and not node.attr.startswith("__")}


def _functions() -> dict[str, ast.AST]:
    tree = ast.parse(_source())
    return {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def _methods(cls: ast.AST) -> set[str]:
    return {node.name for node in cls.body if isinstance(node, ast.FunctionDef)}


def test_every_module_with_tensorrt_calls_is_scanned():
    names = {module.__name__.rsplit(".", 1)[1] for module in _modules()}
    assert {"build", "builder_config", "calibration", "runtime", "engine", "platform",
            "layer_profile"} <= names


def test_every_tensorrt_name_used_is_in_the_table():
    used = _tensorrt_names(ast.parse(_source()))
    assert len(used) > 60  # the walk found the engine code's calls
    missing = sorted(used - set(DEFINED))
    assert not missing, f"look these up in the TensorRT Python bindings first: {missing}"
    functions = _functions()
    for cls, overrides in (("EntropyCalibrator", CALIBRATOR_OVERRIDES),
                           ("LayerProfiler", PROFILER_OVERRIDES),
                           ("BuildProgress", PROGRESS_OVERRIDES)):
        assert overrides <= _methods(functions[cls]) and overrides <= set(DEFINED), cls
    # the new build and run options reach TensorRT through these names
    assert {"create_timing_cache", "set_timing_cache", "get_timing_cache", "num_DLA_cores",
            "DLA_core", "default_device_type", "GPU_FALLBACK", "progress_monitor",
            "profiler", "platform_has_fast_int8"} <= used


def test_tensor_api_path_uses_names_of_8_5_8_6_and_10():
    functions = _functions()
    tensor_path = _tensorrt_names(functions["_allocate_tensor_api"]) | {"execute_async_v3"}
    for name in tensor_path:
        assert DEFINED[name][1] == ALL, name
    # everything outside the runner's two API paths (build, parse, calibrate, deserialise,
    # the runner's set-up) exists in every version too
    runner = functions["TensorRTRunner"]
    runner_init = next(node for node in runner.body
                       if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    shared = _tensorrt_names(runner_init)
    progress = functions["make_progress_monitor"]
    for name, node in functions.items():
        if name in ("TensorRTRunner", "attach_progress_monitor", "make_progress_monitor") or \
                any(node is child for child in ast.walk(runner)) or \
                any(node is child for child in ast.walk(progress)):
            continue
        shared |= _tensorrt_names(node)
    assert {"build_serialized_network", "deserialize_cuda_engine", "OnnxParser"} <= shared
    for name in shared:
        assert DEFINED[name][1] == ALL, name


def test_bindings_api_only_where_it_exists():
    bindings_path = _tensorrt_names(_functions()["_allocate_bindings_api"]) | {"execute_async_v2"}
    assert all(DEFINED[name][1] == BEFORE_10 for name in bindings_path - {"nptype"})
    # ... and the runner takes that path only below 8.5, never on 8.5, 8.6 or 10
    for version in ("8.5.2.2", "8.6.1.6", "10.0.1.6", "10.3.0"):
        assert platform.uses_tensor_api(version)
    assert not platform.uses_tensor_api("8.4.3.1")


def test_progress_monitor_only_where_it_exists():
    functions = _functions()
    names = _tensorrt_names(functions["make_progress_monitor"]) | _tensorrt_names(
        functions["attach_progress_monitor"])
    assert names and all(DEFINED[name][1] == SINCE_10 for name in names - {"progress_monitor"})
    assert DEFINED["progress_monitor"][1] == SINCE_10
    # ... and it is attached only where the version has it
    assert "has_progress_monitor(trt.__version__)" in inspect.getsource(
        builder_config.attach_progress_monitor)
    for version, has in (("8.5.2.2", False), ("8.6.1.6", False), ("10.0.1.6", True),
                         ("10.3.0", True), ("10.13.2.6", True)):
        assert platform.has_progress_monitor(version) is has
