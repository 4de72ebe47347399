"""Inference engines behind one interface: :class:`Segmenter`.

``Segmenter(weights=..., engine="auto").segment(frame)`` -> :class:`SegmentationResult`.
"""

from .segmenter import SegmentationResult, Segmenter, available_engines

__all__ = ["Segmenter", "SegmentationResult", "available_engines"]
