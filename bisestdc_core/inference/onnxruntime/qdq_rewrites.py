"""Graph rewrites that let ONNX Runtime's CPU int8 kernels run a QDQ graph at full speed.

Both keep the network's arithmetic; they only change which kernels ONNX Runtime picks.

* :func:`average_pools_as_depthwise_convs` (before quantization): STDC's stride-2 skip is a
  3 x 3 average pool with ``count_include_pad=1``, i.e. a depthwise convolution with every
  weight 1/9. ONNX Runtime fuses a quantized AveragePool into ``QLinearAveragePool``, which
  took 5.2 of 31.3 ms for BiSeSTDC-Seg's four pools at 256 x 512 (the depthwise
  ``QLinearConv`` they become costs a fraction of that). Symmetric per-channel int8 stores 1/9
  exactly (it is the channel's maximum, so it maps to 127), so the pool's weights lose nothing.
* :func:`shapes_from_quantized_tensors` (after quantization): the dynamic-size export reads
  feature sizes with ``Shape``; after quantization those read a DequantizeLinear's output, so
  ONNX Runtime dequantized seven whole feature maps (and transposed them out of its NHWC
  layout) only to read their sizes: 0.9 ms of DequantizeLinear at 256 x 512. The quantized
  tensor has the same shape, so ``Shape`` reads it instead and the dequantizations go.

Both together: 31.3 -> 25.5 ms, labels unchanged (``python -m benchmarks.int8_profile``,
benchmarks/int8_profile.txt).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

log = logging.getLogger(__name__)


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pool_is_depthwise_conv(attrs: dict) -> bool:
    """Average pools whose every window divides by the kernel area (what a conv computes)."""
    kernel = attrs.get("kernel_shape", [])
    pads = attrs.get("pads", [0] * 2 * len(kernel))
    return (len(kernel) == 2 and not attrs.get("ceil_mode", 0)
            and all(d == 1 for d in attrs.get("dilations", [1, 1]))
            and (attrs.get("count_include_pad", 0) == 1 or not any(pads)))


def average_pools_as_depthwise_convs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Replace 2-D AveragePools (see the module docstring) by equivalent depthwise Convs.

    The Conv keeps the pool's name and output, so node roles and names found on the original
    graph stay valid. Pools whose channel count shape inference cannot tell are left alone.

    Returns:
        ``(model, number of pools replaced)``.
    """
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: v.type.tensor_type.shape
              for v in [*inferred.graph.value_info, *inferred.graph.input]}
    nodes, replaced = [], 0
    for node in model.graph.node:
        attrs = _attributes(node) if node.op_type == "AveragePool" else {}
        shape = shapes.get(node.input[0]) if attrs else None
        if not attrs or not _pool_is_depthwise_conv(attrs) or shape is None \
                or len(shape.dim) != 4 or not shape.dim[1].HasField("dim_value"):
            nodes.append(node)
            continue
        channels = shape.dim[1].dim_value
        kh, kw = attrs["kernel_shape"]
        weight = numpy_helper.from_array(
            np.full((channels, 1, kh, kw), 1.0 / (kh * kw), np.float32), f"{node.name}_weight")
        model.graph.initializer.append(weight)
        nodes.append(helper.make_node(
            "Conv", [node.input[0], weight.name], list(node.output), name=node.name,
            group=channels, kernel_shape=[kh, kw], pads=attrs.get("pads", [0, 0, 0, 0]),
            strides=attrs.get("strides", [1, 1])))
        replaced += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    log.debug("%d average pools rewritten as depthwise convolutions", replaced)
    return model, replaced


def shapes_from_quantized_tensors(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Point every ``Shape`` that reads a DequantizeLinear's output at its quantized input.

    DequantizeLinear nodes left with no reader are removed.

    Returns:
        ``(model, number of Shape nodes rewired)``.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    rewired = 0
    for node in model.graph.node:
        source = producer.get(node.input[0]) if node.op_type == "Shape" else None
        if source is not None and source.op_type == "DequantizeLinear":
            node.input[0] = source.input[0]
            rewired += 1
    read = {name for node in model.graph.node for name in node.input}
    read |= {out.name for out in model.graph.output}
    kept = [node for node in model.graph.node
            if node.op_type != "DequantizeLinear" or node.output[0] in read]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    log.debug("%d Shape nodes read quantized tensors", rewired)
    return model, rewired
