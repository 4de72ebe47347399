"""Why torch sees no CUDA device: the one-line refusal of the torch-side tools (training,
evaluation, the GPU benchmark). Kept apart from :mod:`bisestdc_core.errors`, which the
torch-free tools (the rosbag tools, the node) import too.
"""

from __future__ import annotations

import torch


def require_cuda_message(what: str) -> str:
    """Why CUDA is unavailable, for a one-line refusal that starts with ``what``."""
    if torch.version.cuda is None:
        reason = f"this torch ({torch.__version__}) is a CPU-only build"
    else:
        reason = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return f"{what} but {reason}"
