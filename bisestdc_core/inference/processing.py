"""Pre- and post-processing facts shared by every engine, without torch.

The channel orders a frame may come in and the default network size. The torch functions
the ONNX export and the PyTorch engine share (uint8 frames -> normalised input, logits ->
labels and confidence, the nearest resize) are in :mod:`.torch_processing`; the runtime of
exported models (the node, the ONNX Runtime and TensorRT engines) imports only this module.
"""

from __future__ import annotations

import importlib

from ..normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401 - re-exported

CHANNEL_ORDERS = ("rgb", "bgr")
DEFAULT_NETWORK_SIZE = (512, 1024)


def check_channel_order(order: str) -> str:
    order = str(order).lower()
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, got {order!r}")
    return order


_TORCH_NAMES = ("Preprocess", "labels_from_logits", "confidence_from_logits", "resize_nearest")


def __getattr__(name: str):
    # The torch functions moved to .torch_processing; reached by name so that this module
    # (in the torch-free-runtime contract of .importlinter) never imports torch itself.
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module(f"{__package__}.torch_processing"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
