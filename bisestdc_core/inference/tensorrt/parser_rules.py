"""What TensorRT's ONNX parser accepts, checked on an ONNX file without TensorRT.

TensorRT cannot run here, so a graph that its parser would refuse must be caught by reading the
graph against the parser's documented rules. Each rule below names its source in
onnx-tensorrt (https://github.com/onnx/onnx-tensorrt), at the release branches ``8.5-GA``
(commit fdeeaca), ``8.6-GA`` (ee0b139) and ``10.0-GA`` (73f629e; ``10.1-GA`` 96e7811 for the
importer lines, which are unchanged):

* supported operators and opsets: ``docs/operators.md`` of each branch (the rows marked Y;
  "TensorRT 8.5/8.6 supports operators up to Opset 17", "TensorRT 10.0 supports operators in the
  inclusive range of opset 9 to opset 20"; 8.x's ``ModelImporter.cpp`` warns below opset 7);
* uint8: ``ModelImporter.cpp`` (8.6-GA and 10.1-GA lines 241-254, "TensorRT does not support
  UINT8 types for intermediate tensors!"), 10.0's ``docs/operators.md`` ("UINT8 is only
  supported as network input or output tensor types"), and 8.5's Cast importer
  (``builtin_op_importers.cpp`` lines 317-324: a Cast touching UINT8 must come from or go to
  FLOAT/HALF);
* Cast pairs: the conversions TensorRT's IIdentityLayer/ICastLayer allow (TensorRT API
  reference, IIdentityLayer: "(kFLOAT | kHALF | kINT32 | kBOOL) -> (kFLOAT | kHALF | kINT32 |
  kBOOL), (kFLOAT | kHALF) -> kUINT8, kUINT8 -> (kFLOAT | kHALF)") after the parser's type
  mapping;
* INT64: ``convertDtype`` (8.5-GA ``onnx2trt_utils.cpp`` line 361, 8.6-GA line 358) maps INT64 to
  INT32, and ``docs/operators.md`` of 8.x: "TensorRT will attempt to cast down INT64 to INT32
  ..., clamping values to +-INT_MAX"; 10.x maps INT64 to INT64 (``importerUtils.cpp`` line 326);
* Resize and ArgMax attributes: the Resize and ArgMax rows of ``docs/operators.md`` and
  ``argMinMaxHelper`` (8.5-GA ``onnx2trt_utils.cpp`` lines 58-70: ``select_last_index`` needs
  opset 12; ``keepdims`` and ``axis`` are free);
* QuantizeLinear/DequantizeLinear: their rows in ``docs/operators.md`` (zero point 0; quantized
  type INT8 on 8.x, INT8/FP8/INT4 on 10.x).

:func:`check_tensorrt_rules` works on any ONNX file (the exports here, a QDQ graph, a foreign
model) and returns the violations per TensorRT version; an empty list means the parser accepts
the graph as far as these rules go (they cannot promise that a build succeeds).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

# docs/operators.md at 8.5-GA: every operator marked "Y".
_OPERATORS_8_5 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace
DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor GRU Gather
GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual
GridSample HardSigmoid HardSwish Identity If ImageScaler InstanceNormalization IsNaN LRN LSTM
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad
ParametricSoftplus Pow QuantizeLinear RNN RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign
Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
# docs/operators.md at 8.6-GA adds these rows to 8.5's (and drops none).
_OPERATORS_8_6 = _OPERATORS_8_5 | {"GroupNormalization", "IsInf", "LayerNormalization"}
# docs/operators.md at 10.0-GA adds these rows to 8.6's (and drops none).
_OPERATORS_10 = _OPERATORS_8_6 | {"CastLike", "Gelu", "Hardmax", "Mish"}

_T = TensorProto
# Resize row of docs/operators.md (the same lists on 8.5, 8.6 and 10.0).
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                "asymmetric", "align_corners"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})
_INT32_RANGE = (np.iinfo(np.int32).min, np.iinfo(np.int32).max)


@dataclass(frozen=True)
class ParserRules:
    """One TensorRT version's ONNX-parser rules (see the module docstring for the sources)."""

    version: str
    opsets: tuple[int, int]
    operators: frozenset[str]
    int64_native: bool  # 10.x keeps INT64; 8.x casts it down to INT32
    float_types: frozenset[int]  # ONNX types the parser maps to TensorRT float types
    quantized_types: frozenset[int]  # QuantizeLinear output / DequantizeLinear input types
    argmax_types: frozenset[int]
    resize_types: frozenset[int]

    def tensorrt_type(self, onnx_type: int) -> str:
        """The TensorRT type the parser turns an ONNX element type into (``convertDtype``)."""
        if onnx_type == _T.INT64 and not self.int64_native:
            return "INT32"
        if onnx_type == _T.DOUBLE:
            return "FLOAT"
        return _T.DataType.Name(onnx_type)

    def cast_allowed(self, source: int, target: int) -> bool:
        """IIdentityLayer/ICastLayer conversions after the parser's type mapping."""
        src, dst = self.tensorrt_type(source), self.tensorrt_type(target)
        if src == dst:
            return True
        floats = {self.tensorrt_type(t) for t in self.float_types}
        if "UINT8" in (src, dst):
            return (src if dst == "UINT8" else dst) in {"FLOAT", "FLOAT16"}
        numeric = floats | {"INT32", "BOOL"} | ({"INT64"} if self.int64_native else set())
        return src in numeric and dst in numeric


_FLOATS_8 = frozenset({_T.FLOAT, _T.FLOAT16, _T.DOUBLE})
_FLOATS_10 = _FLOATS_8 | {_T.BFLOAT16}
RULES: dict[str, ParserRules] = {
    "8.5": ParserRules("8.5", (7, 17), _OPERATORS_8_5, False, _FLOATS_8, frozenset({_T.INT8}),
                       frozenset({_T.FLOAT, _T.FLOAT16}), frozenset({_T.FLOAT, _T.FLOAT16})),
    "8.6": ParserRules("8.6", (7, 17), _OPERATORS_8_6, False, _FLOATS_8, frozenset({_T.INT8}),
                       frozenset({_T.FLOAT, _T.FLOAT16, _T.INT32}),
                       frozenset({_T.FLOAT, _T.FLOAT16})),
    "10": ParserRules("10", (9, 20), _OPERATORS_10, True, _FLOATS_10,
                      frozenset({_T.INT8, _T.FLOAT8E4M3FN, _T.INT4}),
                      frozenset({_T.FLOAT, _T.FLOAT16, _T.BFLOAT16, _T.INT32, _T.INT64}),
                      frozenset({_T.FLOAT, _T.FLOAT16, _T.BFLOAT16})),
}


def _type_name(onnx_type: int) -> str:
    return _T.DataType.Name(onnx_type) if onnx_type else "unknown"


class _Graph:
    """The facts the rules need: element types, producers, consumers, constants."""

    def __init__(self, model: onnx.ModelProto):
        inferred = onnx.shape_inference.infer_shapes(model)
        graph = inferred.graph
        self.graph = graph
        self.opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")),
                          0)
        self.types: dict[str, int] = {}
        for value in (*graph.input, *graph.output, *graph.value_info):
            self.types[value.name] = value.type.tensor_type.elem_type
        self.constants: dict[str, np.ndarray] = {}
        for init in graph.initializer:
            self.types[init.name] = init.data_type
            self.constants[init.name] = numpy_helper.to_array(init)
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attr.t)
                        self.types[node.output[0]] = attr.t.data_type
        self.inputs = {v.name for v in graph.input} - set(self.constants)
        self.outputs = {v.name for v in graph.output}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)


def _attrs(node: onnx.NodeProto) -> dict:
    values = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        values[attr.name] = value.decode() if isinstance(value, bytes) else value
    return values


def _where(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {node.name or node.output[0]!r}"


def _check_opset_and_ops(g: _Graph, rules: ParserRules) -> list[str]:
    problems = []
    low, high = rules.opsets
    if not low <= g.opset <= high:
        problems.append(f"opset {g.opset} outside the parser's range {low}-{high}")
    for node in g.graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{_where(node)}: domain {node.domain!r} is not ONNX's (needs a "
                            "TensorRT plugin)")
        elif node.op_type not in rules.operators:
            problems.append(f"{_where(node)}: operator not supported by TensorRT "
                            f"{rules.version}'s ONNX parser")
    return problems


def _check_uint8(g: _Graph, rules: ParserRules) -> list[str]:
    """uint8 only as a network input consumed by Casts to float, or a network output made by a
    Cast from float."""
    problems = []
    for name in sorted(g.inputs):
        if g.types.get(name) != _T.UINT8:
            continue
        for node in g.consumers.get(name, []):
            target = _attrs(node).get("to")
            if node.op_type != "Cast" or target not in rules.float_types:
                problems.append(f"uint8 input {name!r} feeds {_where(node)}; TensorRT accepts a "
                                "uint8 input only into a Cast to float")
    for node in g.graph.node:
        for out in node.output:
            if g.types.get(out) != _T.UINT8:
                continue
            if out not in g.outputs:
                problems.append(f"{_where(node)} makes the uint8 intermediate tensor {out!r}; "
                                "TensorRT does not support UINT8 types for intermediate tensors")
            elif node.op_type != "Cast":
                problems.append(f"uint8 output {out!r} is made by {_where(node)}, not by a Cast "
                                "from float")
    return problems


def _check_casts(g: _Graph, rules: ParserRules) -> list[str]:
    problems = []
    for node in g.graph.node:
        if node.op_type != "Cast":
            continue
        source, target = g.types.get(node.input[0], 0), int(_attrs(node).get("to", 0))
        if not rules.cast_allowed(source, target):
            problems.append(
                f"{_where(node)}: Cast {_type_name(source)} -> {_type_name(target)} (TensorRT "
                f"{rules.tensorrt_type(source)} -> {rules.tensorrt_type(target)}) is not a "
                "conversion TensorRT's cast supports")
    return problems


def _check_int64(g: _Graph, rules: ParserRules) -> list[str]:
    """8.x runs every INT64 tensor as INT32: no INT64 at the graph's boundary (the engine's
    buffers would be INT32) and no INT64 constant the cast-down would clamp, except Slice
    starts/ends, where a clamped bound still means "to the end"."""
    if rules.int64_native:
        return []
    problems = []
    for name in sorted(g.inputs | g.outputs):
        if g.types.get(name) == _T.INT64:
            problems.append(f"graph input/output {name!r} is INT64; TensorRT {rules.version} "
                            "would expose it as INT32")
    slice_bounds = {node.input[i] for node in g.graph.node if node.op_type == "Slice"
                    for i in (1, 2) if len(node.input) > i}
    for name, value in g.constants.items():
        if value.dtype != np.int64 or name in slice_bounds or value.size == 0:
            continue
        if value.min() < _INT32_RANGE[0] or value.max() > _INT32_RANGE[1]:
            problems.append(f"INT64 constant {name!r} holds values outside INT32, which "
                            f"TensorRT {rules.version} would clamp")
    return problems


def _check_attributes(g: _Graph, rules: ParserRules) -> list[str]:
    problems = []
    for node in g.graph.node:
        attrs, where = _attrs(node), _where(node)
        data_type = g.types.get(node.input[0], 0) if node.input else 0
        if node.op_type == "Resize":
            mode = attrs.get("mode", "nearest")
            if mode not in RESIZE_MODES:
                problems.append(f"{where}: mode {mode!r} not in {sorted(RESIZE_MODES)}")
            coords = attrs.get("coordinate_transformation_mode", "half_pixel")
            if coords not in RESIZE_COORDINATES:
                problems.append(f"{where}: coordinate_transformation_mode {coords!r} not "
                                "supported")
            nearest = attrs.get("nearest_mode", "round_prefer_floor")
            if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
                problems.append(f"{where}: nearest_mode {nearest!r} not supported")
            if attrs.get("antialias", 0):
                problems.append(f"{where}: antialiasing is not supported")
            if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
                problems.append(f"{where}: keep_aspect_ratio_policy must be 'stretch'")
            if data_type not in rules.resize_types:
                problems.append(f"{where}: input type {_type_name(data_type)} not supported")
        elif node.op_type in ("ArgMax", "ArgMin"):
            if attrs.get("select_last_index", 0) and g.opset < 12:
                problems.append(f"{where}: select_last_index needs opset 12")
            if data_type not in rules.argmax_types:
                problems.append(f"{where}: input type {_type_name(data_type)} not supported")
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            quantized = node.output[0] if node.op_type == "QuantizeLinear" else node.input[0]
            if g.types.get(quantized) not in rules.quantized_types:
                allowed = ", ".join(_type_name(t) for t in sorted(rules.quantized_types))
                problems.append(f"{where}: quantized type {_type_name(g.types.get(quantized, 0))}"
                                f" not supported (TensorRT {rules.version}: {allowed})")
            if len(node.input) > 2 and node.input[2]:
                zero = g.constants.get(node.input[2])
                if zero is None or np.any(zero != 0):
                    problems.append(f"{where}: the zero point must be a constant 0")
    return problems


def _load(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise ValueError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except (DecodeError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable ONNX model ({error})") from error


def is_explicitly_quantized(model: onnx.ModelProto | str | os.PathLike) -> bool:
    """Whether the graph carries its own int8 scales (QuantizeLinear/DequantizeLinear nodes),
    so TensorRT builds it without a calibrator."""
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear")
               for node in _load(model).graph.node)


def check_tensorrt_rules(
    model: onnx.ModelProto | str | os.PathLike, versions: tuple[str, ...] = tuple(RULES),
) -> dict[str, list[str]]:
    """Violations of TensorRT's ONNX-parser rules, per version (``8.5``, ``8.6``, ``10``).

    Args:
        model: a loaded model or the path of an ONNX file.

    Returns:
        ``{version: [one line per violation]}``; empty lists mean the parser accepts the graph.
    """
    graph = _Graph(_load(model))
    result = {}
    for version in versions:
        if version not in RULES:
            raise ValueError(f"unknown TensorRT version {version!r}; known: {list(RULES)}")
        rules = RULES[version]
        result[version] = [*_check_opset_and_ops(graph, rules), *_check_uint8(graph, rules),
                           *_check_casts(graph, rules), *_check_int64(graph, rules),
                           *_check_attributes(graph, rules)]
    return result


def verdict_lines(result: dict[str, list[str]]) -> list[str]:
    """One line per version (``TensorRT 8.6: accepted`` or ``rejected (n)``) plus the reasons."""
    lines = []
    for version, problems in result.items():
        lines.append(f"TensorRT {version} ONNX parser rules: "
                     + ("accepted" if not problems else f"rejected ({len(problems)} problems)"))
        lines.extend(f"  - {problem}" for problem in problems)
    return lines
