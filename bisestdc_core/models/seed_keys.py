"""The seed's tensor names -> this project's module names.

The seed's segmentation checkpoints name the backbone ``cp.backbone.*``, the context path
``cp.*`` and the heads ``conv_out*``; they also carry tensors no project network uses. The
names shared by every network are mapped here; each registered network adds the names of its
own auxiliary heads (see ``registry.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

# Tensors the seed's files carry that no project network uses: the aliased stage views
# (x2..x32, SPx2..SPx8 share storage with features / featuresSP), the ImageNet classifier,
# and the detail heads at strides 2, 4 and 16 that the seed built but never trained.
SEED_UNUSED = re.compile(
    r"^cp\.backbone\.(x\d+|SPx\d+|conv_last|fc|bn|linear)\."
    r"|^conv_out_sp(2|4|16)\."
)
SEED_COMMON_RULES = (
    (r"^cp\.backbone\.featuresSP\.", "backbone.detail_branch."),
    (r"^cp\.backbone\.ffm\.", "backbone.detail_fusion."),
    (r"^cp\.backbone\.features\.", "backbone.features."),
    (r"^cp\.(arm\d+|conv_head\d+|conv_avg)\.", r"context.\1."),
    (r"^conv_out\.", "head."),
    (r"^conv_out_sp8\.", "detail_head."),
    (r"^ffm\.", "ffm."),
)


def is_seed_state_dict(state: Mapping[str, Any]) -> bool:
    return any(k.startswith("cp.backbone.") for k in state)


@dataclass(frozen=True)
class SeedKeyMap:
    """How the seed's checkpoints name one network's tensors.

    Attributes:
        aux_heads: the seed's name of each auxiliary head -> ours (``conv_out16`` ->
            ``aux_head8``: the seed numbers a head after the ARM feeding it, one level coarser
            than where it sits).
    """

    aux_heads: Mapping[str, str]

    def convert(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename a seed segmentation state dict to the network's names, unused tensors
        dropped."""
        rules = SEED_COMMON_RULES + tuple(
            (rf"^{re.escape(seed)}\.", f"{ours}.") for seed, ours in self.aux_heads.items())
        out = {}
        for key, value in state.items():
            if SEED_UNUSED.search(key):
                continue
            new_key = key
            for pattern, repl in rules:
                new_key, n = re.subn(pattern, repl, key)
                if n:
                    break
            out[new_key] = value
        return out
