"""Model names, engine names, precisions and dataset names each have one definition (#14).

The command lines' choices and the node's parameter validation equal the registries', and a
scan of the package sources finds no other literal list of those names. Every registered
dataset builds from a tiny folder in its layout.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import cv2
import numpy as np
import pytest

from bisestdc_core.classes import CITYSCAPES, CLASS_SETS, IGNORE_INDEX
from bisestdc_core.cli import benchmark, export
from bisestdc_core.cli import evaluate as evaluate_cli
from bisestdc_core.cli import quantize as quantize_cli
from bisestdc_core.cli.model_options import add_segmenter_arguments, segmenter_kwargs
from bisestdc_core.data.registry import DATASET_NAMES, DATASETS, TRAINABLE_DATASETS, build_dataset
from bisestdc_core.data.synthetic import write_dataset
from bisestdc_core.inference.registry import AUTO, ENGINE_CHOICES, ENGINE_NAMES, ENGINES
from bisestdc_core.model_card import PRECISIONS
from bisestdc_core.models import MODEL_REGISTRY
from bisestdc_core.training.config import CHOICES
from bisestdc_ros.bags import make_bag
from bisestdc_ros.cli import bag_eval
from bisestdc_ros.cli import make_bag as make_bag_cli
from bisestdc_ros.node.config import PARAMETERS, ConfigError, validate

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bisestdc_core", "bisestdc_ros")
MODELS = tuple(MODEL_REGISTRY)
# The modules that define a vocabulary (engines register their precisions in the registry).
DEFINERS = {
    "engine names": {"bisestdc_core/inference/registry.py"},
    "precisions": {"bisestdc_core/model_card.py", "bisestdc_core/inference/registry.py"},
    "model names": {"bisestdc_core/model_card.py"},  # NETWORK_NAMES, for the torch-free tools
    "dataset names": {"bisestdc_core/data/registry.py"},
}


def choices(parser: argparse.ArgumentParser, option: str) -> tuple:
    action = next(a for a in parser._actions if option in a.option_strings)
    return tuple(action.choices)


def vocabularies() -> dict[str, set[str]]:
    return {"engine names": set(ENGINE_NAMES), "precisions": set(PRECISIONS),
            "model names": set(MODELS), "dataset names": set(DATASET_NAMES)}


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
    assert choices(quantize_cli.build_parser(), "--int8-target") == tuple(int8_engines)


def test_training_config_choices():
    assert CHOICES[("model", "name")] == MODELS
    # Training needs labelled train and val splits: an image folder has neither.
    assert CHOICES[("data", "dataset")] == TRAINABLE_DATASETS
    assert set(TRAINABLE_DATASETS) == set(DATASET_NAMES) - {"folder"}


def test_dataset_choices_are_the_registry():
    assert choices(evaluate_cli.build_parser(), "--dataset") == DATASET_NAMES
    # make_bag's "synthetic" renders frames itself; every other source is a dataset by name.
    sources = choices(make_bag_cli.build_parser(), "--source")
    assert sources[0] == "synthetic" and set(sources) == set(DATASET_NAMES)
    for name, kind in DATASETS.items():
        if kind.class_set is not None:
            assert make_bag.SOURCE_CLASS_SETS[name] == kind.class_set.name


def test_evaluate_takes_the_shared_model_options():
    parser = evaluate_cli.build_parser()
    assert choices(parser, "--model-name") == MODELS == choices(parser, "--model")
    assert choices(parser, "--class-set") == tuple(CLASS_SETS)
    shared = argparse.ArgumentParser()
    add_segmenter_arguments(shared)

    def help_of(p: argparse.ArgumentParser, option: str) -> str:
        return next(a.help for a in p._actions if option in a.option_strings)

    for option in ("--weights", "--model-name", "--device"):
        assert help_of(parser, option) == help_of(shared, option)


def test_int8_benchmark_dataset_choices():
    int8_accuracy = pytest.importorskip("benchmarks.int8_accuracy")
    assert choices(int8_accuracy.build_parser(), "--dataset") == DATASET_NAMES


def _write_cityscapes(root: Path) -> dict:
    write_dataset(root, 1, split="val", height=32, width=64, seed=3)
    return {}


def _write_camvid(root: Path) -> dict:
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    cv2.imwrite(str(root / "val" / "a.png"), np.full((8, 12, 3), 90, np.uint8))
    labels = np.arange(96, dtype=np.uint8).reshape(8, 12) % 12  # 0..10 and void (11)
    cv2.imwrite(str(root / "valannot" / "a.png"), labels)
    return {}


def _write_folder(root: Path) -> dict:
    (root / "labels").mkdir(parents=True)
    cv2.imwrite(str(root / "a.png"), np.full((8, 12, 3), 90, np.uint8))
    cv2.imwrite(str(root / "labels" / "a.png"), np.full((8, 12), 18, np.uint8))
    return {"label_dir": root / "labels"}


# One writer per registered layout: a dataset registered without one fails here.
TINY_WRITERS = {"cityscapes": _write_cityscapes, "synthetic": _write_cityscapes,
                "camvid": _write_camvid, "folder": _write_folder}


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_registered_dataset_builds_from_a_tiny_folder(name, tmp_path):
    kind = DATASETS[name]
    extra = TINY_WRITERS[name](tmp_path)
    dataset = build_dataset(name, tmp_path, "val", **extra)
    assert len(dataset) == 1
    assert dataset.class_set is (kind.class_set or CITYSCAPES)
    sample = dataset[0]
    assert sample["image"].ndim == 3 and sample["label"] is not None
    ids = set(np.unique(sample["label"]).tolist()) - {IGNORE_INDEX}
    assert ids and max(ids) < dataset.class_set.num_classes
    assert "ROOT" in kind.layout  # where the files lie, for help texts and errors


def test_an_unregistered_dataset_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown dataset kind 'kitti'; known: \['cityscapes'"):
        build_dataset("kitti", "/tmp", "val")


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
