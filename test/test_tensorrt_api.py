"""The TensorRT Python API names the engine code uses exist in the versions it dispatches them to.

TensorRT cannot be installed here, so the names are checked against the Python bindings'
sources: NVIDIA/TensorRT (https://github.com/NVIDIA/TensorRT) at ``release/8.5`` (68b5072f),
``release/8.6`` (a0215c1a) and ``release/10.0`` (ccf11997), where every Python name is a quoted
string in ``python/src/**.cpp`` (``nptype`` is a Python function in the package's
``tensorrt/__init__.py``). The table lists, per name, the file that defines it and the versions
whose sources contain it; a name the code uses that the table lacks fails the test, so a new
TensorRT call must be looked up before it is used.
"""

from __future__ import annotations

import ast
import inspect

from bisestdc_core.inference import tensorrt_engine as te

ALL = frozenset({"8.5", "8.6", "10.0"})
BEFORE_10 = frozenset({"8.5", "8.6"})
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
        "set_tensor_address")},
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
# Objects that come from TensorRT in tensorrt_engine.py (attributes of anything else are numpy,
# pycuda or the standard library).
TRT_OBJECTS = {"trt", "engine", "context", "builder", "network", "parser", "config", "profile",
               "tensor", "self._runtime", "self.engine", "self.context"}
CALIBRATOR_OVERRIDES = {"get_batch_size", "get_batch", "read_calibration_cache",
                        "write_calibration_cache"}


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
    tree = ast.parse(inspect.getsource(te))
    return {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_every_tensorrt_name_used_is_in_the_table():
    used = _tensorrt_names(ast.parse(inspect.getsource(te)))
    assert len(used) > 40  # the walk found the engine code's calls
    missing = sorted(used - set(DEFINED))
    assert not missing, f"look these up in the TensorRT Python bindings first: {missing}"
    calibrator = _functions()["EntropyCalibrator"]
    methods = {node.name for node in calibrator.body if isinstance(node, ast.FunctionDef)}
    assert CALIBRATOR_OVERRIDES <= methods and CALIBRATOR_OVERRIDES <= set(DEFINED)


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
    for name, node in functions.items():
        if name != "TensorRTRunner" and not any(node is child for child in ast.walk(runner)):
            shared |= _tensorrt_names(node)
    assert {"build_serialized_network", "deserialize_cuda_engine", "OnnxParser"} <= shared
    for name in shared:
        assert DEFINED[name][1] == ALL, name


def test_bindings_api_only_where_it_exists():
    bindings_path = _tensorrt_names(_functions()["_allocate_bindings_api"]) | {"execute_async_v2"}
    assert all(DEFINED[name][1] == BEFORE_10 for name in bindings_path - {"nptype"})
    # ... and the runner takes that path only below 8.5, never on 8.5, 8.6 or 10
    for version in ("8.5.2.2", "8.6.1.6", "10.0.1.6", "10.3.0"):
        assert te.uses_tensor_api(version)
    assert not te.uses_tensor_api("8.4.3.1")
