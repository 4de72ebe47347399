"""Model names, engine names and precisions each have one definition (#14).

The command lines' choices and the node's parameter validation equal the registries', and a
scan of the package sources finds no other literal list of those names.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from bisestdc_core import benchmark, export
from bisestdc_core.inference import quantize
from bisestdc_core.inference.cli_args import segmenter_kwargs
from bisestdc_core.inference.registry import AUTO, ENGINE_CHOICES, ENGINE_NAMES, ENGINES
from bisestdc_core.model_card import PRECISIONS
from bisestdc_core.models import MODEL_REGISTRY
from bisestdc_core.training.config import CHOICES
from bisestdc_ros import bag_eval
from bisestdc_ros.segment_config import PARAMETERS, ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bisestdc_core", "bisestdc_ros")
MODELS = tuple(MODEL_REGISTRY)
# The modules that define a vocabulary (engines register their precisions in the registry).
DEFINERS = {
    "engine names": {"bisestdc_core/inference/registry.py"},
    "precisions": {"bisestdc_core/model_card.py", "bisestdc_core/inference/registry.py"},
    "model names": set(),
}


def choices(parser: argparse.ArgumentParser, option: str) -> tuple:
    action = next(a for a in parser._actions if option in a.option_strings)
    return tuple(action.choices)


def vocabularies() -> dict[str, set[str]]:
    return {"engine names": set(ENGINE_NAMES), "precisions": set(PRECISIONS),
            "model names": set(MODELS)}


def name_lists(source: str, vocabulary: set[str]) -> list[int]:
    """Lines of tuple/list/set literals of two or more names of ``vocabulary`` (and at most
    ``auto`` besides): a second definition of that vocabulary."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            continue
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(values) != len(node.elts) or not all(isinstance(v, str) for v in values):
            continue
        if sum(v in vocabulary for v in values) >= 2 and set(values) <= vocabulary | {AUTO}:
            lines.append(node.lineno)
    return lines


def offenders() -> dict[str, list[str]]:
    """Vocabulary -> ``file:line`` of every literal list of its names outside its definers."""
    found: dict[str, list[str]] = {kind: [] for kind in DEFINERS}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            source = path.read_text()
            for kind, vocabulary in vocabularies().items():
                if relative in DEFINERS[kind]:
                    continue
                found[kind] += [f"{relative}:{line}" for line in name_lists(source, vocabulary)]
    return found


def test_the_registries_are_not_empty():
    assert len(ENGINE_NAMES) >= 3 and len(PRECISIONS) >= 4 and len(MODELS) >= 3
    assert ENGINE_CHOICES == (AUTO, *ENGINE_NAMES)
    for spec in ENGINES.values():
        assert set(spec.precisions) <= set(PRECISIONS) and spec.precisions


def test_export_choices():
    parser = export.build_parser()
    assert choices(parser, "--model") == MODELS == choices(parser, "--model-name")
    assert choices(parser, "--precision") == ENGINES["tensorrt"].precisions


def test_benchmark_choices():
    parser = benchmark.build_parser()
    assert choices(parser, "--engines") == ENGINE_CHOICES
    assert choices(parser, "--models") == MODELS
    assert choices(parser, "--precision") == PRECISIONS
    defaults = parser.parse_args([])
    assert set(defaults.engines) <= set(ENGINE_NAMES) and defaults.models == list(MODELS)


def test_bag_eval_choices():
    parser = bag_eval.build_parser()
    assert choices(parser, "--engine") == ENGINE_CHOICES
    assert choices(parser, "--precision") == PRECISIONS
    assert choices(parser, "--model-name") == MODELS


def test_quantize_targets_are_the_int8_engines():
    int8_engines = sorted(n for n, spec in ENGINES.items() if "int8" in spec.precisions)
    assert choices(quantize.build_parser(), "--int8-target") == tuple(int8_engines)


def test_training_config_choices():
    assert CHOICES[("model", "name")] == MODELS


@pytest.mark.parametrize("name", ["engine", "precision"])
def test_node_parameters_accept_exactly_the_registry(name):
    allowed = ENGINE_CHOICES if name == "engine" else PRECISIONS
    for value in allowed:
        assert getattr(validate({name: value}), name) == value
    for value in ("tflite", "fp8", "", "AUTO"):
        with pytest.raises(ConfigError, match=f"^{name} must be one of"):
            validate({name: value})
    description = next(p.description for p in PARAMETERS if p.name == name)
    assert all(value in description for value in allowed)


def test_the_node_config_and_the_options_give_the_same_segmenter_arguments():
    config = validate({"weights": "w.pt", "engine": "torch", "precision": "bf16",
                       "network_height": 64, "network_width": 128, "model_name": "stdc1"})
    args = bag_eval.build_parser().parse_args([
        "--bag", "b", "--weights", "w.pt", "--engine", "torch", "--precision", "bf16",
        "--network-size", "64", "128", "--model-name", "stdc1"])
    expected = {"weights": "w.pt", "onnx": None, "engine_path": None, "engine": "torch",
                "device": "auto", "precision": "bf16", "network_size": (64, 128),
                "model_name": "stdc1", "num_classes": 19}
    assert segmenter_kwargs(config) == expected
    assert segmenter_kwargs(args) == expected


def test_the_scan_finds_a_second_definition():
    vocabulary = vocabularies()["engine names"]
    source = ('A = ("auto", "torch", "onnxruntime")\nB = ["torch"]\nC = ("torch", "other")\n'
              'D = {"tensorrt", "torch"}\n')
    assert name_lists(source, vocabulary) == [1, 4]


def test_names_are_defined_only_in_the_registries():
    assert offenders() == {kind: [] for kind in DEFINERS}


def test_an_engine_is_refused_a_precision_it_does_not_register():
    from bisestdc_core.inference import Segmenter

    demo = REPO / "training/checkpoints/demo/bisestdc_synthetic.pt"
    int8_engines = ", ".join(n for n, spec in ENGINES.items() if "int8" in spec.precisions)
    with pytest.raises(RuntimeError, match=f"torch: int8 runs on {int8_engines}"):
        Segmenter(weights=demo, engine="torch", device="cpu", precision="int8",
                  calib_cache=__file__)  # any existing file satisfies the int8 pre-check


def test_registering_an_engine_checks_its_vocabulary():
    from bisestdc_core.inference.registry import EngineSpec, register_engine

    for spec in (EngineSpec("x", ("fp8",), ("cpu",), "x"),
                 EngineSpec("x", ("fp32",), ("tpu",), "x"),
                 EngineSpec(AUTO, ("fp32",), ("cpu",), "x")):
        with pytest.raises(ValueError, match="engine"):
            register_engine(spec)
    assert "x" not in ENGINES
