"""Per-frame stage timings: the one vocabulary of latency, from the engine to the report.

The `Segmenter` fills the inference stages, the node adds decoding, rendering, publishing and
the end-to-end figures, offline bag evaluation adds decoding; the node's latency message, the
bag reports (offline and live), their plots and the node benchmark all use these field names
as keys. A stage a path does not measure stays None and is left out of ``measured()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields


def _stage(label: str) -> float | None:
    """A stage in milliseconds; ``label`` is how a person reads it (plots)."""
    return field(default=None, metadata={"label": label})


@dataclass
class StageTimings:
    """Milliseconds spent in each stage of one frame (None: not measured on this path).

    Field order is the order of the node's latency message and of the report's table.
    """

    decode_ms: float | None = _stage("decode")
    preprocess_ms: float | None = _stage("preprocess")
    inference_ms: float | None = _stage("inference")
    postprocess_ms: float | None = _stage("postprocess")
    total_ms: float | None = _stage("total (Segmenter)")
    # The node's stages: its whole Segmenter call, the colour/overlay rendering, publishing.
    segment_ms: float | None = _stage("segment (node)")
    render_ms: float | None = _stage("render")
    publish_ms: float | None = _stage("publish")
    # Camera stamp -> node done (-1 when the camera sends zero stamps); live bag evaluation
    # replaces it with its own sent -> labels received measurement.
    end_to_end_ms: float | None = _stage("end to end (sent -> labels received)")
    node_latency_ms: float | None = _stage("node (received -> published)")

    def measured(self) -> dict[str, float]:
        """Field name -> ms of the stages that were measured, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def from_values(cls, values: Mapping[str, float]) -> StageTimings:
        """The stages found in ``values`` (other keys, e.g. a message's counters, ignored)."""
        return cls(**{name: float(values[name]) for name in STAGES if name in values})


STAGES: tuple[str, ...] = tuple(f.name for f in fields(StageTimings))
STAGE_LABELS: dict[str, str] = {f.name: f.metadata["label"] for f in fields(StageTimings)}
