"""int8 QDQ quantization: label agreement with fp32, graph structure per target, sidecar, the
Segmenter's int8 and bf16 paths, and refusals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from inference_helpers import SMALL, export_graph, nondegenerate_model, realistic_frames
from onnx import numpy_helper

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.classes import CITYSCAPES
from bisestdc_core.cli import quantize as quantize_cli
from bisestdc_core.data.synthetic import render_scene
from bisestdc_core.inference import Segmenter
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.model_files import describe
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.onnxruntime import quantize
from bisestdc_core.inference.torch_engine import cpu_bf16_supported

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "training" / "checkpoints" / "demo" / "bisestdc_synthetic.pt"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))


def scenes(count: int, seed: int) -> list[np.ndarray]:
    return [render_scene(seed, *SMALL, 99, i)[0] for i in range(count)]


@pytest.fixture(scope="module")
def demo_fp32(tmp_path_factory) -> Path:
    """The trained demo network exported at 128 x 256 (small, but its labels mean something)."""
    network, card = load_network(DEMO)
    path = tmp_path_factory.mktemp("demo") / "demo.onnx"
    export_onnx(network, path, card.replace(class_names=CITYSCAPES.names, network_size=SMALL))
    return path


@pytest.fixture(scope="module")
def stdc1_fp32(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stdc1") / "stdc1.onnx"
    export_graph(nondegenerate_model("stdc1"), path, dynamic=True)
    return path


@pytest.mark.slow
def test_int8_labels_agree_with_fp32_on_unseen_scenes(demo_fp32, tmp_path):
    out = tmp_path / "demo.int8.onnx"
    quantize.quantize_onnx(demo_fp32, out, scenes(8, seed=1),
                           float_layers=list(quantize.DEFAULT_FLOAT_LAYERS))
    held_out = scenes(4, seed=2)
    agreement = quantize.label_agreement(quantize.graph_labels(demo_fp32, held_out),
                                         quantize.graph_labels(out, held_out))
    assert agreement >= 0.98, agreement


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_qdq_graph_keeps_the_interface_and_the_target_encoding(stdc1_fp32, tmp_path, target):
    out = tmp_path / f"{target}.onnx"
    side = quantize.quantize_onnx(stdc1_fp32, out, realistic_frames(4), realistic_frames(2, seed=5),
                                  target=target)
    model = onnx.load(str(out))
    graph = model.graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    values = _initializers(model)
    quant = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert quant and len(convs) > 10
    # Per-channel weights: the DequantizeLinear feeding a Conv's weight has one scale per
    # output channel.
    weight_dq = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    per_channel = [c for c in convs if c.input[1] in weight_dq
                   and values[weight_dq[c.input[1]].input[1]].size > 1]
    assert len(per_channel) >= len(convs) - 3
    # The preprocessing before the first Conv is never quantized.
    # (Nodes reading only constants, e.g. weight dequantizations, may come first.)
    first = next(n for n in graph.node if n.op_type != "Constant"
                 and not set(n.input) <= set(values))
    assert first.op_type in ("Transpose", "Cast")
    zero_points = [values[n.input[2]] for n in quant]
    problems = quantize.tensorrt_qdq_problems(model)
    if target == "tensorrt":  # TensorRT: int8 with zero point 0 only
        assert all(z.dtype == np.int8 and not z.any() for z in zero_points)
        assert problems == []
    else:
        assert all(z.dtype == np.uint8 for z in zero_points)
        assert problems and "zero point must be an int8 constant 0" in problems[0]
    stored = json.loads(sidecar_path(out).read_text())
    assert stored == side and stored["precision"] == "int8"
    card = describe(out)
    assert card.precision == "int8" and set(card.float_layers) == set(stored["quantization"][
        "float_layers"])
    assert card.replace(precision="fp32", float_layers=None) == describe(stdc1_fp32)
    q = stored["quantization"]
    assert q["target"] == target and q["calibration"]["frames"] == 4
    assert set(q["float_layer_selection"]["candidates"]) == set(quantize.FLOAT_CANDIDATES)
    kept = {n.name for n in convs} | {n.name for n in graph.node if n.op_type == "Resize"}
    assert set(q["float_layers"].values()) <= kept


@pytest.mark.slow
def test_float_layer_left_float_has_no_quantized_input(stdc1_fp32, tmp_path):
    out = tmp_path / "head_float.onnx"
    side = quantize.quantize_onnx(stdc1_fp32, out, realistic_frames(2), float_layers=["head"])
    graph = onnx.load(str(out)).graph
    head = next(n for n in graph.node if n.name == side["quantization"]["float_layers"]["head"])
    producers = {o: n.op_type for n in graph.node for o in n.output}
    assert producers.get(head.input[1]) != "DequantizeLinear"  # float weights


@pytest.mark.slow
def test_segmenter_runs_int8_graphs_and_quantizes_weights_on_the_fly(test_checkpoint, tmp_path,
                                                                    caplog):
    frame = realistic_frames(1, 100, 180)[0]
    # At 64 x 128: the 32 generated calibration scenes (their count is the product's) are made
    # and run at the network size, a quarter of SMALL's pixels; the size is not the subject.
    size = (64, 128)
    with caplog.at_level(logging.WARNING, logger="bisestdc_core.inference.onnxruntime.quantize"):
        seg = Segmenter(weights=test_checkpoint, engine="onnxruntime", precision="int8",
                        network_size=size)
    assert seg.precision == "int8" and seg.engine_name == "onnxruntime"
    assert "generated calibration scenes" in caplog.text
    labels = seg.segment(frame).labels
    assert labels.shape == (100, 180) and labels.dtype == np.uint8
    # The quantized graph was cached: a second Segmenter reuses it.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.onnxruntime.quantize"):
        again = Segmenter(weights=test_checkpoint, engine="onnxruntime", precision="int8",
                          network_size=size)
    assert "reusing cached int8 graph" in caplog.text
    assert np.array_equal(again.segment(frame).labels, labels)


def test_segmenter_refuses_int8_for_an_fp32_graph(stdc1_fp32):
    with pytest.raises(RuntimeError, match="fp32 graph; quantize it with bisestdc-quantize"):
        Segmenter(onnx=stdc1_fp32, engine="onnxruntime", precision="int8")


def test_bad_calibration_sources_are_refused_before_work(stdc1_fp32, tmp_path):
    with pytest.raises(ValueError, match="calibration image folder not found"):
        quantize.quantize_from_sources(stdc1_fp32, tmp_path / "q.onnx",
                                       calib_images=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="needs an image topic"):
        quantize.quantize_from_sources(stdc1_fp32, tmp_path / "q.onnx",
                                       calib_bag=str(tmp_path))
    with pytest.raises(ValueError, match="unknown float layers"):
        quantize.quantize_onnx(stdc1_fp32, tmp_path / "q.onnx", realistic_frames(1),
                               float_layers=["backbone"])
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.slow
def test_quantize_tool_calibrates_on_a_bag_topic(stdc1_fp32, tmp_path, monkeypatch, capsys):
    """bisestdc-quantize (the core's command line) reads --calib-bag frames with the reader the
    ROS package registers in the entry-point group; without one a bag is refused saying so."""
    from bisestdc_core.cli.boundary import tool_options
    from bisestdc_core.inference import calibration_data
    from bisestdc_ros.cli import make_bag

    monkeypatch.setattr(calibration_data, "_bag_readers", [])
    monkeypatch.setattr(calibration_data, "entry_points", lambda group: [])
    bag = tmp_path / "bag"
    make_bag.make_bag(tool_options(make_bag.build_parser(), out=bag, frames=3,
                                   height=SMALL[0], width=SMALL[1]))
    out = tmp_path / "q.onnx"
    argv = ["--onnx", str(stdc1_fp32), "--out", str(out), "--calib-bag", str(bag),
            "--calib-topic", "/camera/image_raw", "--calib-count", "3", "--float-layers", "none"]
    assert quantize_cli.main(argv) == 2
    assert "need a bag reader" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()  # the installed package's entry point again
    monkeypatch.setattr(calibration_data, "_bag_readers", [])
    assert quantize_cli.main(argv) == 0
    assert type(calibration_data.bag_reader()).__name__ == "RosbagFrames"
    assert out.is_file() and f"int8 ONNX: {out}" in capsys.readouterr().out
    calibration = quantize.read_sidecar(out)["quantization"]["calibration"]
    assert calibration == {"bag": str(bag), "topic": "/camera/image_raw", "frames": 3}


def test_quantize_cli_help_shows_defaults():
    help_text = quantize_cli.build_parser().format_help()
    assert "--calib-images" in help_text and "(default: 32)" in help_text


@pytest.mark.slow
@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no bf16 instructions")
def test_torch_bf16_agrees_with_fp32(tmp_path):
    frames = scenes(2, seed=3)
    fp32 = Segmenter(weights=DEMO, engine="torch", device="cpu", network_size=SMALL)
    bf16 = Segmenter(weights=DEMO, engine="torch", device="cpu", precision="bf16",
                     network_size=SMALL)
    assert bf16.precision == "bf16"
    agree = np.mean([np.mean(fp32.segment(f).labels == bf16.segment(f).labels) for f in frames])
    assert agree >= 0.98, agree


def test_bf16_refused_where_the_cpu_lacks_it(monkeypatch):
    monkeypatch.setattr("bisestdc_core.inference.torch_engine.cpu_bf16_supported", lambda: False)
    with pytest.raises(RuntimeError, match="no bf16 instructions"):
        Segmenter(weights=DEMO, engine="torch", device="cpu", precision="bf16")


def _load_benchmark(name: str):
    """A script under benchmarks/ as a module (the folder is not an installed package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["int8_accuracy", "cpu_precision"])
def test_benchmark_help_shows_defaults(name):
    help_text = _load_benchmark(name).build_parser().format_help()
    assert "(default:" in help_text and "--out" in help_text


@pytest.mark.slow
def test_precision_benchmark_ceiling_and_macs():
    cpu_precision = _load_benchmark("cpu_precision")
    # The ONNX Runtime ceiling graphs run and report a positive rate; MACs match the README's
    # figure for BiSeSTDC-Seg at 512x1024 (50.79 G) scaled by area.
    assert cpu_precision.ort_matmul_gops(int8=True, n=256, repeats=1) > 0
    assert cpu_precision.ort_matmul_gops(int8=False, n=256, repeats=1) > 0
    assert cpu_precision.main_path_gmacs("bisestdc", (256, 512)) == pytest.approx(50.79 / 4,
                                                                                  rel=0.01)


@pytest.mark.slow
def test_tensorrt_target_passes_the_parser_rules(demo_fp32, tmp_path):
    """The TensorRT QDQ graph against the export's TensorRT ONNX-parser rules (8.5, 8.6, 10)."""
    rules = pytest.importorskip("bisestdc_core.inference.tensorrt.parser_rules",
                                reason="the TensorRT parser-rule check is not in this tree")
    assert rules.check_tensorrt_rules(demo_fp32) == {v: [] for v in rules.RULES}, \
        "the fp32 export itself is not TensorRT-conformant"
    out = tmp_path / "trt.int8.onnx"
    quantize.quantize_onnx(demo_fp32, out, scenes(2, seed=1), target="tensorrt",
                           float_layers=list(quantize.DEFAULT_FLOAT_LAYERS))
    assert rules.is_explicitly_quantized(out)
    assert rules.check_tensorrt_rules(out) == {v: [] for v in rules.RULES}
