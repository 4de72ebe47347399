"""Inference engines behind one interface: :class:`Segmenter`.

``Segmenter(weights=..., engine="auto").segment(frame)`` -> :class:`SegmentationResult`.
"""

import cv2

# OpenCV's own thread pool fights PyTorch's OpenMP pool for the same cores: measured here,
# merely importing cv2 made a torch CPU forward ~3x slower. Our OpenCV calls are small
# (label resizes), so they run on the calling thread. This is process-wide, for every process
# that runs inference (the node, the tools, the benchmarks).
cv2.setNumThreads(0)

__all__ = ["Segmenter", "SegmentationResult", "available_engines"]


def __getattr__(name: str):
    # The Segmenter loads on first use, so that the engine registry and the model files'
    # readers stay light (the node's configuration). None of them imports torch: that is
    # .checkpoint_source's, for .pt checkpoints and engine torch (see .importlinter).
    if name in __all__:
        from bisestdc_core.inference import segmenter  # noqa: PLC0415

        return getattr(segmenter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
