"""Every export variant computes, in ONNX Runtime, exactly the labels and confidence of the
committed reference (written by ``test/export_reference.py`` before the graph was
restructured for TensorRT)."""

from __future__ import annotations

import numpy as np
import pytest
from export_reference import (
    REFERENCE,
    VARIANTS,
    export_variant,
    frames_for,
    network_from_arrays,
    run_variant,
)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def network(reference):
    """The reference's network, built once: export_reference.py exports every variant from one
    network too (export_onnx only wraps it, after the float() and eval() it already has)."""
    return network_from_arrays(reference)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_outputs_bit_identical_to_reference(name, reference, network, tmp_path):
    variant = VARIANTS[name]
    path = tmp_path / f"{name}.onnx"
    export_variant(network, path, variant)
    outputs = run_variant(path, frames_for(variant, reference))
    expected_outputs = ["labels"] + (["confidence"] if variant.get("confidence") else [])
    assert list(outputs) == expected_outputs
    for output, values in outputs.items():
        for i, value in enumerate(values):
            expected = reference[f"output/{name}/{output}/{i}"]
            assert value.dtype == expected.dtype and value.shape == expected.shape
            differ = int((value != expected).sum())
            assert differ == 0, f"{name} {output} frame {i}: {differ} pixels differ"
