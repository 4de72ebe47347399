"""Labels at the network's resolution: returned by every engine and searched for small
objects as they are, without resizing frame-size labels back down."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from inference_helpers import SMALL, realistic_frames

from bisestdc_core.inference import Segmenter
from bisestdc_core.small_objects import find_small_objects_at


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_cpu_engines_return_network_labels(test_checkpoint, engine):
    seg = Segmenter(weights=test_checkpoint, engine=engine, device="cpu", network_size=SMALL)
    frame = realistic_frames(1, 300, 500)[0]
    result = seg.segment(frame)
    assert result.network_labels.shape == SMALL and result.network_labels.dtype == np.uint8
    upsampled = cv2.resize(result.network_labels, (500, 300), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(upsampled, result.labels)


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["torch", "tensorrt"])
def test_cuda_engines_return_network_labels(test_checkpoint, engine):
    if engine == "tensorrt":
        pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    seg = Segmenter(weights=test_checkpoint, engine=engine, device="cuda", precision="fp32",
                    network_size=SMALL)
    for _ in range(2):  # the torch engine's second frame of a size replays its CUDA graph
        result = seg.segment(realistic_frames(1, 300, 500)[0])
        assert result.network_labels.shape == SMALL
        upsampled = cv2.resize(result.network_labels, (500, 300),
                               interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(upsampled, result.labels)


def test_small_objects_use_the_given_network_labels():
    net = np.zeros((64, 128), np.uint8)
    net[10:40, 20:22] = 5  # a pole, 2 x 30 px at network resolution
    net[5:9, 90:96] = 7  # a sign
    frame_labels = cv2.resize(net, (384, 192), interpolation=cv2.INTER_NEAREST)  # x3
    resized = find_small_objects_at(frame_labels, [5, 7], 16, (64, 128))
    given = find_small_objects_at(frame_labels, [5, 7], 16, (64, 128), analysis_labels=net)
    assert given == resized
    # The given map is what is searched: a pole only it has is found, scaled to the frame.
    net[50:60, 100] = 5
    found = find_small_objects_at(frame_labels, [5], 16, (64, 128), analysis_labels=net)
    assert (300, 150, 3, 30) in [o.box for o in found]
