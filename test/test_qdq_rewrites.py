"""The int8 graph rewrites for ONNX Runtime: same numbers, faster kernels."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from onnx_graphs import make_model, tensor

from bisestdc_core.inference.onnxruntime.qdq_rewrites import (
    average_pools_as_depthwise_convs,
    shapes_from_quantized_tensors,
)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    model.ir_version = 8  # the onnx package writes a newer IR than ONNX Runtime reads
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _pool_model(**attrs) -> onnx.ModelProto:
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3, 3],
                            **attrs)
    return make_model([node], [tensor("x", TensorProto.FLOAT, (1, 5, 9, 11))],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                      valid_onnx=False)  # the checker wants the output's shape spelled out


def test_stdc_skip_pool_becomes_an_equal_depthwise_conv():
    """STDC's skip: 3 x 3, stride 2, pad 1, count_include_pad=1 (PyTorch's AvgPool2d default)."""
    model = _pool_model(strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    x = np.random.default_rng(0).normal(size=(1, 5, 9, 11)).astype(np.float32)
    expected = _run(model, {"x": x})[0]
    rewritten, replaced = average_pools_as_depthwise_convs(model)
    assert replaced == 1
    assert [n.op_type for n in rewritten.graph.node] == ["Conv"]
    assert rewritten.graph.node[0].name == "pool"  # roles found by name stay valid
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], expected, rtol=1e-6, atol=1e-6)
    torch_pool = torch.nn.AvgPool2d(3, stride=2, padding=1)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(expected, torch_pool, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2], "pads": [1, 1, 1, 1]},  # border windows divide by fewer than 9
    {"strides": [2, 2], "ceil_mode": 1},  # partial windows at the edge
])
def test_pools_a_conv_cannot_express_are_left_alone(attrs):
    rewritten, replaced = average_pools_as_depthwise_convs(_pool_model(**attrs))
    assert replaced == 0
    assert [n.op_type for n in rewritten.graph.node] == ["AveragePool"]


def test_shape_reads_the_quantized_tensor_and_the_dequantization_goes():
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("zero", TensorProto.UINT8, [], [128])
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"], name="dq"),
        helper.make_node("Shape", ["xd"], ["shape"], name="shape"),
        helper.make_node("Identity", ["xq"], ["yq"], name="keep"),
    ]
    model = make_model(nodes, [tensor("x", TensorProto.FLOAT, (1, 3, 4, 6))],
                       [tensor("shape", TensorProto.INT64, (4,)),
                        tensor("yq", TensorProto.UINT8, (1, 3, 4, 6))], [scale, zero])
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 6)).astype(np.float32)
    expected = _run(model, {"x": x})
    rewritten, rewired = shapes_from_quantized_tensors(model)
    assert rewired == 1
    assert "DequantizeLinear" not in [n.op_type for n in rewritten.graph.node]
    for got, want in zip(_run(rewritten, {"x": x}), expected):
        np.testing.assert_array_equal(got, want)
