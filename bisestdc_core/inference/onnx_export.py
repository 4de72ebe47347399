"""ONNX export with pre- and post-processing inside the graph, and the export cache.

The exported graph takes what a camera driver delivers and returns what a node publishes:

* input ``image``: N x H x W x 3 uint8, RGB or BGR (fixed at export);
* inside: uint8 -> float as the first node, then (in float) channel flip, transpose, bilinear
  resize to the network size, mean/std normalisation, the network, argmax (and max softmax
  probability), any resize of the maps, and float -> uint8 as the last nodes: the graph has no
  uint8 tensor but its input and outputs, as TensorRT's ONNX parser requires;
* output ``labels``: N x h x w uint8 train ids at the network size (default) or nearest-upsampled
  to H x W (``labels_at_input_size``);
* output ``confidence`` (optional): same shape, uint8, max class probability x 255.

Input H/W are fixed by default (the network size, which is what TensorRT engines are built
for); ``dynamic`` makes batch, H and W symbolic so one file serves cameras of any size (ONNX
Runtime). The sidecar ``<file>.onnx.json`` (:mod:`.model_files`) holds the exported card and
the export's record (input layout, opset, the file's sha256, provenance); the engines read it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from bisestdc_core.artefacts import (
    atomic_path,
    cache_dir,
    file_sha256,
    remove_stale_temps,
    sidecar_path,
)
from bisestdc_core.inference.loading import state_dict_sha256
from bisestdc_core.inference.model_files import ONNX_SIDECAR_FORMAT, read_sidecar, write_sidecar
from bisestdc_core.inference.processing import DEFAULT_NETWORK_SIZE, check_channel_order
from bisestdc_core.inference.torch_processing import (
    Preprocess,
    confidence_from_logits,
    labels_from_logits,
    resize_nearest,
)
from bisestdc_core.model_card import ModelCard

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"
# Bump when the exported graph changes, so cached exports are not reused. 2: uint8 only at the
# graph's boundary (TensorRT's parser rejects the version-1 graphs; the outputs are the same).
EXPORT_VERSION = 2


class SegmentationGraph(nn.Module):
    """Preprocess -> network -> argmax (-> confidence), the function the ONNX file holds.

    Shapes: image N x H x W x 3 uint8 -> labels N x h x w uint8 [, confidence N x h x w uint8]
    with (h, w) = network size, or (H, W) when ``labels_at_input_size``.
    """

    def __init__(
        self, network: nn.Module, network_size: Sequence[int], mean: Sequence[float],
        std: Sequence[float], channel_order: str = "rgb", confidence: bool = False,
        labels_at_input_size: bool = False, dynamic: bool = False,
    ):
        super().__init__()
        # With dynamic H/W the trace must keep the resizes even though the dummy input may
        # have the network size (the tracer would otherwise bake in the shape check).
        self.dynamic = dynamic
        self.preprocess = Preprocess(network_size, mean, std, channel_order,
                                     always_resize=dynamic)
        self.network = network
        self.confidence = confidence
        self.labels_at_input_size = labels_at_input_size

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # TensorRT accepts uint8 only as a network input consumed by a Cast and as a network
        # output produced by one (see inference/tensorrt_rules.py): cast to float first, keep
        # labels and confidence in float through any resize, cast to uint8 last. Every value
        # on the way is a whole number, so the outputs equal the all-uint8 formulation's.
        pixels = image.float()
        logits = self.network(self.preprocess(pixels))
        maps = [labels_from_logits(logits, torch.float32)]
        if self.confidence:
            maps.append(confidence_from_logits(logits, torch.float32))
        if self.labels_at_input_size:
            size = pixels.shape[1:3]
            maps = [resize_nearest(m, size, always=self.dynamic) for m in maps]
        outputs = tuple(m.to(torch.uint8) for m in maps)
        return outputs if self.confidence else outputs[0]


def export_onnx(
    network: nn.Module, out: str | os.PathLike, card: ModelCard, *,
    input_size: Sequence[int] | None = None, channel_order: str = "rgb", dynamic: bool = False,
    confidence: bool = False, labels_at_input_size: bool = False, opset: int = OPSET,
    source: dict[str, Any] | None = None,
) -> ModelCard:
    """Export ``network`` (fp32, eval) with in-graph pre/post-processing; write the sidecar.

    Args:
        network: N x 3 x h x w normalised RGB -> N x C x h x w logits in eval mode.
        out: the .onnx path (parent folders are created).
        card: the network's card (model, classes, mean/std; its network size, else
            (512, 1024), is the (h, w) the network runs at).
        input_size: (H, W) of the input when not dynamic; defaults to the network size.
        dynamic: symbolic batch, H and W.
        source: provenance recorded in the sidecar (weights path and hash).

    Returns:
        The exported graph's card (also in ``<out>.json``).

    Raises:
        ValueError: a card whose class count differs from the network's, or over 255 classes.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    channel_order = check_channel_order(channel_order)
    network_size = tuple(int(v) for v in (card.network_size or DEFAULT_NETWORK_SIZE))
    input_size = tuple(int(v) for v in (input_size or network_size))
    num_classes = int(getattr(network, "num_classes", card.num_classes))
    if num_classes != card.num_classes:
        raise ValueError(f"{card.source or 'card'}: {card.num_classes} classes, but the network "
                         f"predicts {num_classes}")
    if num_classes > 255:
        raise ValueError(f"{num_classes} classes do not fit uint8 labels")
    graph = SegmentationGraph(
        network.float().eval(), network_size, card.mean, card.std, channel_order, confidence,
        labels_at_input_size, dynamic,
    ).eval()
    outputs = ["labels"] + (["confidence"] if confidence else [])
    dummy = torch.zeros(1, *input_size, 3, dtype=torch.uint8)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 1: "height", 2: "width"}}
        for name in outputs:
            dynamic_axes[name] = (
                {0: "batch", 1: "height", 2: "width"} if labels_at_input_size else {0: "batch"}
            )
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript (not a dependency here); it is still the supported path for opset 17.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Shape checks in the wrapper are meant to be resolved at trace time (fixed export) or
        # are bypassed (dynamic export), so the tracer's warning about them is noise.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with torch.inference_mode():
            torch.onnx.export(
                graph, (dummy,), str(out), dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=outputs, dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    onnx.checker.check_model(str(out))
    exported = card.replace(
        network_size=network_size, channel_order=channel_order, precision="fp32",
        outputs=tuple(outputs), input_size=None if dynamic else input_size,
        labels_at_input_size=labels_at_input_size, float_layers=None,
        source=str(sidecar_path(out)))
    label_shape = ["N", "H", "W"] if labels_at_input_size else ["N", *network_size]
    record = {
        "format": ONNX_SIDECAR_FORMAT,
        "export_version": EXPORT_VERSION,
        "input": {
            "name": INPUT_NAME, "layout": "NHWC", "dtype": "uint8",
            "channel_order": channel_order,
            "shape": [None, None, None, 3] if dynamic else [1, *input_size, 3],
        },
        "dynamic": dynamic,
        "output": {"dtype": "uint8", "shape": label_shape},
        "opset": opset,
        "sha256": file_sha256(out),
        "source": source or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_sidecar(out, record, exported)
    log.info("exported %s (%s, %s, outputs %s) -> %s", card.model, channel_order,
             "dynamic H/W" if dynamic else f"input {input_size}", outputs, out)
    return exported


def export_cached(
    network: nn.Module, card: ModelCard, weights: str | os.PathLike | None, *,
    channel_order: str = "rgb", dynamic: bool = True, confidence: bool = False,
    directory: Path | None = None,
) -> Path:
    """Export into the cache unless an export with the same weights and settings is there.

    The key is the weights' hash (the file's sha256, or the tensors' for in-memory weights)
    plus every export setting, so a changed checkpoint or setting never reuses a stale file.
    ``directory`` replaces the persistent cache folder (for networks no file describes, whose
    exports could never be reused). ``card`` carries the class set and the network size.
    """
    weights_hash = file_sha256(weights) if weights is not None else state_dict_sha256(network)
    size = card.network_size or DEFAULT_NETWORK_SIZE
    settings = (
        f"{card.model}-c{card.num_classes}-{size[0]}x{size[1]}-"
        f"{channel_order}-{'dyn' if dynamic else 'fixed'}-{'conf' if confidence else 'noconf'}-"
        f"op{OPSET}-v{EXPORT_VERSION}"
    )
    path = (directory or cache_dir("onnx")) / f"{weights_hash[:16]}-{settings}.onnx"
    sidecar = read_sidecar(path) if path.is_file() else None
    if sidecar is not None and sidecar.get("sha256") == file_sha256(path):
        log.info("reusing cached ONNX export %s", path)
        return path
    log.info("exporting ONNX into the cache (%s)", path)
    remove_stale_temps(path.parent)  # exports of killed processes
    # The sidecar is renamed first: a reader that finds the .onnx always finds its sidecar.
    with atomic_path(path, companions=(".json",)) as tmp:
        export_onnx(
            network, tmp, card, channel_order=channel_order, dynamic=dynamic,
            confidence=confidence,
            source={"weights": str(weights) if weights else None, "weights_sha256": weights_hash},
        )
    return path
