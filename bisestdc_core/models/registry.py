"""The networks by name: the one place a network is registered.

``MODEL_REGISTRY`` maps each of ``model_card.NETWORK_NAMES`` to its architecture: checkpoint
cards and configs are checked against its keys, and the command lines offer the names (read
from the card module, which loads no torch). Adding a network: its spec in
``segmentation.py`` (and backbone in ``backbones.py`` if new), its name in ``NETWORK_NAMES``,
one entry here, its configs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bisestdc_core.model_card import NETWORK_NAMES
from bisestdc_core.models.seed_keys import SeedKeyMap
from bisestdc_core.models.segmentation import (
    BISESTDC_SEG,
    STDC1_SEG,
    STDC2_SEG,
    NetworkSpec,
    SegmentationNetwork,
)


@dataclass(frozen=True)
class RegisteredNetwork:
    """A network by name: its architecture and how the seed's checkpoints name its tensors."""

    spec: NetworkSpec
    seed_keys: SeedKeyMap

    def build(self, num_classes: int) -> SegmentationNetwork:
        return SegmentationNetwork(self.spec, num_classes)


_STDC_SEG_SEED_KEYS = SeedKeyMap({"conv_out16": "aux_head8", "conv_out32": "aux_head16"})

MODEL_REGISTRY: dict[str, RegisteredNetwork] = {
    "bisestdc": RegisteredNetwork(BISESTDC_SEG, SeedKeyMap(
        {"conv_out8": "aux_head4", "conv_out16": "aux_head8", "conv_out32": "aux_head16"})),
    "stdc1": RegisteredNetwork(STDC1_SEG, _STDC_SEG_SEED_KEYS),
    "stdc2": RegisteredNetwork(STDC2_SEG, _STDC_SEG_SEED_KEYS),
}

if tuple(MODEL_REGISTRY) != NETWORK_NAMES:
    raise ImportError(f"MODEL_REGISTRY registers {tuple(MODEL_REGISTRY)} but "
                      f"model_card.NETWORK_NAMES lists {NETWORK_NAMES}: keep the two equal")
