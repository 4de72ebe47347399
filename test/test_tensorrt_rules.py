"""TensorRT ONNX-parser conformance: every export variant passes the 8.5, 8.6 and 10 rules, and
each rule catches the graph it exists for (hand-built graphs, one violation each)."""

from __future__ import annotations

import numpy as np
import pytest
from export_reference import VARIANTS, export_variant, seeded_network
from inference_helpers import export_graph, nondegenerate_model
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import make_model, qdq_model, tensor, uint8_transpose_model

from bisestdc_core.inference.tensorrt.parser_rules import RULES, check_tensorrt_rules, verdict_lines

VERSIONS = tuple(RULES)


@pytest.fixture(scope="module")
def tiny():
    return seeded_network()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_export_variant_is_accepted(name, tiny, tmp_path):
    path = tmp_path / f"{name}.onnx"
    export_variant(tiny, path, VARIANTS[name])
    result = check_tensorrt_rules(path)
    assert list(result) == list(VERSIONS)
    assert result == {v: [] for v in VERSIONS}, "\n".join(verdict_lines(result))


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["stdc1", "bisestdc"])
def test_real_networks_are_accepted(model_name, tmp_path):
    """The real networks' ops (BN, pooling, attention, align-corners resizes), in the variant
    with every graph feature: BGR, dynamic, confidence, labels at the input size."""
    path = tmp_path / f"{model_name}.onnx"
    export_graph(nondegenerate_model(model_name), path, model_name, network_size=(64, 128),
                 channel_order="bgr", dynamic=True, confidence=True, labels_at_input_size=True)
    result = check_tensorrt_rules(path)
    assert result == {v: [] for v in VERSIONS}, "\n".join(verdict_lines(result))


# ---- hand-built graphs, one rule each --------------------------------------------------------

def _only(result, version, fragment):
    problems = result[version]
    assert len(problems) == 1 and fragment in problems[0], problems


def test_uint8_input_must_feed_a_cast():
    result = check_tensorrt_rules(uint8_transpose_model())
    for version in VERSIONS:
        text = "\n".join(result[version])
        assert "uint8 input 'image' feeds Transpose" in text
        assert "uint8 intermediate tensor 't'" in text


def test_uint8_output_must_come_from_a_float_cast():
    good = make_model([helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
                   helper.make_node("Cast", ["f"], ["out"], to=TensorProto.UINT8)],
                  [tensor("image", TensorProto.UINT8)], [tensor("out", TensorProto.UINT8)])
    assert check_tensorrt_rules(good) == {v: [] for v in VERSIONS}
    # the same but a uint8 Identity between the cast and the output: an intermediate uint8
    bad = make_model([helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
                  helper.make_node("Cast", ["f"], ["u"], to=TensorProto.UINT8),
                  helper.make_node("Identity", ["u"], ["out"])],
                 [tensor("image", TensorProto.UINT8)], [tensor("out", TensorProto.UINT8)])
    result = check_tensorrt_rules(bad)
    for version in VERSIONS:
        assert any("uint8 intermediate tensor 'u'" in p for p in result[version])
        assert any("not by a Cast" in p for p in result[version])


def test_argmax_cast_straight_to_uint8_is_refused_float_first_is_not():
    def graph(casts):
        nodes = [helper.make_node("ArgMax", ["logits"], ["ids"], axis=1, keepdims=0)]
        nodes += [helper.make_node("Cast", [src], [dst], to=to) for src, dst, to in casts]
        return make_model(nodes, [tensor("logits", TensorProto.FLOAT, (1, 19, 4, 4))],
                      [tensor("labels", TensorProto.UINT8, (1, 4, 4))])

    direct = check_tensorrt_rules(graph([("ids", "labels", TensorProto.UINT8)]))
    _only(direct, "8.5", "Cast INT64 -> UINT8 (TensorRT INT32 -> UINT8)")
    _only(direct, "10", "Cast INT64 -> UINT8 (TensorRT INT64 -> UINT8)")
    via_float = graph([("ids", "f", TensorProto.FLOAT), ("f", "labels", TensorProto.UINT8)])
    assert check_tensorrt_rules(via_float) == {v: [] for v in VERSIONS}


def _resize_model(opset=17, **attrs):
    sizes = numpy_helper.from_array(np.array([1, 3, 8, 8], np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    return make_model([node], [tensor("x", TensorProto.FLOAT, (1, 3, 4, 4))],
                  [tensor("y", TensorProto.FLOAT, (1, 3, 8, 8))], [sizes], opset=opset)


def test_resize_modes():
    assert check_tensorrt_rules(_resize_model(mode="linear")) == {v: [] for v in VERSIONS}
    assert check_tensorrt_rules(_resize_model(
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor",
    )) == {v: [] for v in VERSIONS}
    _only(check_tensorrt_rules(_resize_model(mode="cubic")), "8.6", "mode 'cubic'")
    _only(check_tensorrt_rules(_resize_model(coordinate_transformation_mode="tf_crop_and_resize",
                                             mode="linear")), "10", "tf_crop_and_resize")
    antialias = check_tensorrt_rules(_resize_model(opset=18, mode="linear", antialias=1))
    _only(antialias, "10", "antialiasing")
    assert any("opset 18 outside" in p for p in antialias["8.5"])


def test_argmax_select_last_index_needs_opset_12():
    def graph(opset):
        node = helper.make_node("ArgMax", ["x"], ["i"], axis=1, select_last_index=1)
        return make_model([node], [tensor("x", TensorProto.FLOAT, (1, 3, 4))],
                      [tensor("i", TensorProto.INT64, (1, 1, 4))], opset=opset,
                      valid_onnx=opset >= 12)  # the attribute does not exist before 12

    assert check_tensorrt_rules(graph(12), ("10",)) == {"10": []}
    assert any("select_last_index needs opset 12" in p
               for p in check_tensorrt_rules(graph(11), ("8.6",))["8.6"])


def test_opset_range_and_operator_lists():
    col2im = helper.make_node("Col2Im", ["x", "shape", "block"], ["y"])
    x = tensor("x", TensorProto.FLOAT, (1, 4, 9))
    consts = [numpy_helper.from_array(np.array([4, 4], np.int64), "shape"),
              numpy_helper.from_array(np.array([2, 2], np.int64), "block")]
    model = make_model([col2im], [x], [tensor("y", TensorProto.FLOAT, (1, 1, 4, 4))], consts,
                   opset=18)
    result = check_tensorrt_rules(model)
    for version in VERSIONS:
        assert any("Col2Im" in p and "not supported" in p for p in result[version])
    assert any("opset 18 outside the parser's range 7-17" in p for p in result["8.6"])
    assert not any("opset" in p for p in result["10"])
    # LayerNormalization: in 8.6's list, not in 8.5's
    ln = helper.make_node("LayerNormalization", ["x", "scale"], ["y"], axis=-1)
    scale = numpy_helper.from_array(np.ones(9, np.float32), "scale")
    result = check_tensorrt_rules(make_model([ln], [x], [tensor("y", TensorProto.FLOAT, (1, 4, 9))],
                                         [scale]))
    assert result["8.6"] == [] and result["10"] == []
    _only(result, "8.5", "LayerNormalization")


def test_int64_boundary_and_clamped_constants_on_8x():
    shape = helper.make_node("Shape", ["x"], ["s"])
    model = make_model([shape], [tensor("x", TensorProto.FLOAT, (1, 3))],
                   [tensor("s", TensorProto.INT64, (2,))])
    result = check_tensorrt_rules(model)
    _only(result, "8.5", "graph input/output 's' is INT64")
    assert result["10"] == []
    big = numpy_helper.from_array(np.array([2**40], np.int64), "big")
    add = helper.make_node("Add", ["a", "big"], ["b"])
    model = make_model([add], [tensor("a", TensorProto.INT32, (1,))],
                   [tensor("b", TensorProto.INT64, (1,))], [big])
    assert any("'big' holds values outside INT32" in p for p in check_tensorrt_rules(model)["8.6"])


def test_qdq_graphs_need_int8_with_zero_point_0():
    assert check_tensorrt_rules(qdq_model(TensorProto.INT8, 0)) == {v: [] for v in VERSIONS}
    uint8 = "\n".join(check_tensorrt_rules(qdq_model(TensorProto.UINT8, 128))["10"])
    assert "quantized type UINT8 not supported" in uint8
    assert "zero point must be a constant 0" in uint8
    assert "uint8 intermediate tensor 'q'" in uint8


def test_custom_domain_and_unknown_version():
    node = helper.make_node("Foo", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [tensor("x", TensorProto.FLOAT, (1,))],
                              [tensor("y", TensorProto.FLOAT, (1,))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    assert any("domain 'com.example'" in p for p in check_tensorrt_rules(model)["8.6"])
    with pytest.raises(ValueError, match="unknown TensorRT version '7.1'"):
        check_tensorrt_rules(model, ("7.1",))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="ONNX file not found: .*nope.onnx"):
        check_tensorrt_rules(tmp_path / "nope.onnx")
