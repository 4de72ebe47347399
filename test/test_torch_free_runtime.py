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


def run_fresh(script: str, *args: object) -> dict:
    """``script`` in a fresh interpreter: the JSON it prints last, after checking that it
    exited 0 and that no torch module was loaded (its "torch" entry)."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] == [], f"torch modules loaded: {report['torch'][:5]}"
    return report


def test_onnx_runtime_imports_no_torch(tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    export_variant(seeded_network(), onnx_path, {"dynamic": True, "confidence": True})
    report = run_fresh(CHILD, onnx_path)
    assert report["engine"] == "onnxruntime" and report["auto"] == "onnxruntime"
    assert report["labels"] == [40, 60] and report["confidence"] == [40, 60]
    assert 0 <= report["max_label"] < 19


BAG_TOOLS_CHILD = """
import json, sys
from bisestdc_ros.cli import bag_eval, make_bag

bag, onnx_path, out = sys.argv[1:4]
made = make_bag.main(["--source", "synthetic", "--frames", "2", "--height", "64",
                      "--width", "128", "--out", bag])
scored = bag_eval.main(["--bag", bag, "--mode", "offline", "--onnx", onnx_path,
                        "--engine", "onnxruntime", "--out", out])
print(json.dumps({
    "codes": [made, scored],
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
}))
"""


def test_rosbag_tools_run_an_onnx_graph_without_torch(tmp_path):
    # Where the node runs (a Jetson with the runtime set only), drives are recorded and replayed
    # through the bag tools on the same exported graph.
    onnx_path = tmp_path / "tiny.onnx"
    export_variant(seeded_network(), onnx_path, {"dynamic": True})
    report = run_fresh(BAG_TOOLS_CHILD, tmp_path / "bag", onnx_path, tmp_path / "report")
    assert report["codes"] == [0, 0]
    scored = json.loads((tmp_path / "report" / "report.json").read_text())
    assert scored["frames_scored"] == 2 and scored["engine"]["engine"] == "onnxruntime"
