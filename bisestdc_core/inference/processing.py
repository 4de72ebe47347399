"""The frame facts every engine shares, without torch: the network size used when a model card
names none, and the check of a frame's channel order.

The channel orders themselves are the model card's
(:data:`bisestdc_core.model_card.CHANNEL_ORDERS`).
The torch side of processing (uint8 frames -> normalised input, logits -> labels and
confidence, the nearest resize) is :mod:`.torch_processing`; the runtime of exported models
(the node, the ONNX Runtime and TensorRT engines) imports only this module.
"""

from __future__ import annotations

from bisestdc_core.model_card import CHANNEL_ORDERS

DEFAULT_NETWORK_SIZE = (512, 1024)


def check_channel_order(order: str) -> str:
    """``order`` lower-cased if it is one of :data:`CHANNEL_ORDERS`; ValueError otherwise."""
    order = str(order).lower()
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, got {order!r}")
    return order
