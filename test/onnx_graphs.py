"""Small hand-built ONNX graphs for the TensorRT parser-rule tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(nodes, inputs, outputs, initializers=(), opset=17, valid_onnx=True):
    """A model of ``nodes`` at ``opset``; ``valid_onnx`` runs ONNX's checker on it."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if valid_onnx:
        onnx.checker.check_model(model)
    return model


def tensor(name, elem_type, shape=(1, 4, 4, 3)):
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def qdq_model(elem_type=TensorProto.INT8, zero=0):
    """x -> QuantizeLinear -> DequantizeLinear -> y with scale 0.1 and the given zero point."""
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(zero, helper.tensor_dtype_to_np_dtype(elem_type)), "zp")
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"])]
    return make_model(nodes, [tensor("x", TensorProto.FLOAT, (1, 4))],
                      [tensor("y", TensorProto.FLOAT, (1, 4))], [scale, zp])


def uint8_transpose_model():
    """A graph that transposes its uint8 input before casting it, as the exports once did."""
    nodes = [helper.make_node("Transpose", ["image"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Cast", ["t"], ["out"], to=TensorProto.FLOAT)]
    return make_model(nodes, [tensor("image", TensorProto.UINT8)],
                      [tensor("out", TensorProto.FLOAT, (1, 3, 4, 4))])
