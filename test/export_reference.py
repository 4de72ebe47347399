"""The ONNX Runtime outputs of every export variant, kept as a reference for graph changes.

The exported graph's pre- and post-processing (casts, channel flip, transpose, resizes, argmax,
confidence) may be restructured, e.g. to satisfy TensorRT's ONNX parser, but must compute the
same labels and confidence. This module fixes everything that determines those outputs: a tiny
network whose weights are stored with the reference, the frames, and the export variants.

``python test/export_reference.py`` exports every variant with the current code, runs ONNX
Runtime on the stored frames and writes ``test/data/export_reference.npz``. The committed file
was written by the export as it was before the graph was restructured (the commit is recorded
in the file); ``test_export_reference.py`` checks today's export against it bit for bit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bisestdc_core.classes import CITYSCAPES  # noqa: E402
from bisestdc_core.inference.onnx_export import export_onnx  # noqa: E402
from bisestdc_core.inference.untrained_network import synthetic_frame  # noqa: E402
from bisestdc_core.model_card import ModelCard  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "data" / "export_reference.npz"
NETWORK_SIZE = (32, 64)
FIXED_INPUT = (48, 80)  # a fixed input that differs from the network size: resized in-graph
DYNAMIC_SIZES = ((32, 64), (45, 70), (70, 150), (20, 40))
FRAMES_PER_SIZE = 2

# name -> export_onnx keyword arguments; input sizes follow from "input_size"/"dynamic".
VARIANTS: dict[str, dict] = {
    "plain": {},
    "plain_resized_input": {"input_size": FIXED_INPUT},
    "confidence": {"confidence": True},
    "labels_at_input_size": {"input_size": FIXED_INPUT, "labels_at_input_size": True},
    "labels_at_input_size_confidence": {"input_size": FIXED_INPUT, "labels_at_input_size": True,
                                        "confidence": True},
    "dynamic": {"dynamic": True},
    "dynamic_confidence": {"dynamic": True, "confidence": True},
    "dynamic_labels_at_input_size_confidence": {"dynamic": True, "labels_at_input_size": True,
                                                "confidence": True},
    "bgr": {"channel_order": "bgr", "confidence": True},
    "bgr_dynamic_labels_at_input_size": {"channel_order": "bgr", "dynamic": True,
                                         "labels_at_input_size": True, "confidence": True},
}


class TinySegmenter(nn.Module):
    """N x 3 x h x w -> N x 19 x h x w logits: stride-2 conv, BN, ReLU, 1x1 classifier and a
    bilinear x2 upsample (align_corners, as the real heads), so the graph holds the same kinds
    of ops as the real networks at a few hundred weights."""

    num_classes = len(CITYSCAPES.names)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.classifier = nn.Conv2d(8, self.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.classifier(torch.relu(self.bn(self.conv(x))))
        return nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear",
                                         align_corners=True)


def seeded_network() -> TinySegmenter:
    """The reference network's initial weights (the stored copy is what the test uses)."""
    torch.manual_seed(0)
    net = TinySegmenter()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def network_from_arrays(arrays: dict[str, np.ndarray]) -> TinySegmenter:
    net = TinySegmenter()
    state = {k[len("weight/"):]: torch.from_numpy(v) for k, v in arrays.items()
             if k.startswith("weight/")}
    net.load_state_dict(state)
    return net.eval()


def frames_for(variant: dict, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The stored frames a variant is run on (its fixed input size, or every dynamic size)."""
    if variant.get("dynamic"):
        sizes = DYNAMIC_SIZES
    else:
        sizes = (tuple(variant.get("input_size", NETWORK_SIZE)),)
    return [arrays[f"frame/{h}x{w}/{i}"] for h, w in sizes for i in range(FRAMES_PER_SIZE)]


def make_frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2026)
    sizes = {NETWORK_SIZE, FIXED_INPUT, *DYNAMIC_SIZES}
    return {f"frame/{h}x{w}/{i}": synthetic_frame(h, w, rng)
            for h, w in sorted(sizes) for i in range(FRAMES_PER_SIZE)}


def export_variant(network: nn.Module, path: Path, variant: dict) -> ModelCard:
    card = ModelCard(model="tiny", num_classes=len(CITYSCAPES.names), class_set="cityscapes",
                     class_names=CITYSCAPES.names, network_size=NETWORK_SIZE)
    return export_onnx(network, path, card, **variant)


def run_variant(path: Path, frames: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Output name -> one array per frame (ONNX Runtime, CPU, one thread: reproducible)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for frame in frames:
        for name, value in zip(names, session.run(None, {"image": frame[None]})):
            results[name].append(value)
    return results


def reference_outputs(network: nn.Module, arrays: dict[str, np.ndarray],
                      folder: Path) -> dict[str, np.ndarray]:
    """``output/<variant>/<name>/<frame index>`` -> array for every variant."""
    outputs = {}
    for name, variant in VARIANTS.items():
        path = folder / f"{name}.onnx"
        export_variant(network, path, variant)
        for output, values in run_variant(path, frames_for(variant, arrays)).items():
            for i, value in enumerate(values):
                outputs[f"output/{name}/{output}/{i}"] = value
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=REFERENCE)
    args = parser.parse_args(argv)
    import tempfile  # noqa: PLC0415

    network = seeded_network()
    arrays = {**make_frames(),
              **{f"weight/{k}": v.numpy() for k, v in network.state_dict().items()}}
    with tempfile.TemporaryDirectory() as folder:
        outputs = reference_outputs(network, arrays, Path(folder))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=REPO_ROOT, check=False).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, made_at_commit=np.array(commit), **arrays, **outputs)
    labels = [v for k, v in outputs.items() if "/labels/" in k]
    print(f"{args.out}: {len(VARIANTS)} variants, {len(labels)} label maps, "
          f"{len(np.unique(np.concatenate([v.ravel() for v in labels])))} distinct classes, "
          f"made at commit {commit[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
