"""The runtime of an exported model loads no torch (issue "A torch-free runtime").

Given an ONNX graph, the node's modules, the Segmenter and ONNX Runtime serve a frame with
torch never imported (engine onnxruntime, and auto, the node's default); torch is for
reading ``.pt`` checkpoints and engine ``torch`` only. The static side is the
torch-free-runtime contract of .importlinter (``lint-imports``); this checks the running
process, in a fresh interpreter (this one has torch loaded).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from export_reference import export_variant, seeded_network

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
import numpy as np
import bisestdc_ros.cli.segment_node
import bisestdc_ros.node.segment_node
from bisestdc_core.inference.segmenter import Segmenter

segmenter = Segmenter(engine="onnxruntime", onnx=sys.argv[1])
frame = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
result = segmenter.segment(frame, with_confidence=True)
auto = Segmenter(onnx=sys.argv[1])  # the node's default, engine auto: torch is not asked
auto.segment(frame)
print(json.dumps({
    "engine": segmenter.engine_name, "auto": auto.engine_name, "device": segmenter.device,
    "labels": list(result.labels.shape), "confidence": list(result.confidence.shape),
    "max_label": int(result.labels.max()),
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
}))
"""


def test_onnx_runtime_imports_no_torch(tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    export_variant(seeded_network(), onnx_path, {"dynamic": True, "confidence": True})
    done = subprocess.run([sys.executable, "-c", CHILD, str(onnx_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] == [], f"torch modules loaded: {report['torch'][:5]}"
    assert report["engine"] == "onnxruntime" and report["auto"] == "onnxruntime"
    assert report["labels"] == [40, 60] and report["confidence"] == [40, 60]
    assert 0 <= report["max_label"] < 19
