"""The ``IBuilderConfig`` of a build: workspace, shape profile, precision flags, DLA, the
persistent timing cache and build progress logging.

Timing cache: ``config.create_timing_cache(bytes)`` + ``set_timing_cache`` before the build,
``get_timing_cache().serialize()`` written back (atomically) after it, so the next build on
this GPU and TensorRT version skips most kernel timing (Autoware's and Isaac ROS's TensorRT
nodes keep one the same way). A cache TensorRT rejects is ignored with one log line.

Progress: TensorRT 10 reports build phases to an ``IProgressMonitor`` set as
``config.progress_monitor``; on 8.x the build logs a start and an end line instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bisestdc_core.artefacts import atomic_write_bytes
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.inference.tensorrt.platform import TensorRTUnavailable, has_progress_monitor

log = logging.getLogger(__name__)


def configure_build(trt: Any, builder: Any, network: Any, precision: str,
                    input_shape: Sequence[int], options: TensorRTOptions,
                    subject: str | os.PathLike) -> tuple[Any, Any]:
    """The builder config for ``precision`` and ``options``; returns (config, profile or None).

    Raises:
        TensorRTUnavailable: a DLA core asked for that this device does not have.
    """
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)
    shape = tuple(int(v) for v in input_shape)
    profile = None
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if any(d < 0 for d in tensor.shape):  # dynamic ONNX: pin the one shape we serve
            profile = profile or builder.create_optimization_profile()
            profile.set_shape(tensor.name, shape, shape, shape)
    if profile is not None:
        config.add_optimization_profile(profile)
    if precision != "fp32":
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast fp16; TensorRT may pick fp32 kernels")
        config.set_flag(trt.BuilderFlag.FP16)  # int8 falls back to fp16, not fp32
    if precision == "int8":
        if not builder.platform_has_fast_int8:
            log.warning("this GPU has no fast int8; TensorRT may pick fp16 kernels")
        config.set_flag(trt.BuilderFlag.INT8)
    if options.on_dla:
        use_dla(trt, builder, config, options.dla_core, subject)
    return config, profile


def use_dla(trt: Any, builder: Any, config: Any, core: int, subject: str | os.PathLike) -> None:
    """Build for DLA ``core``, with GPU fallback for layers the DLA cannot run."""
    available = int(builder.num_DLA_cores)
    if core >= available:
        raise TensorRTUnavailable(
            "DLA set-up", f"dla_core {core} asked for, but this device has "
            f"{available or 'no'} DLA core{'s' if available != 1 else ''}; use dla_core -1 "
            "(GPU)", subject)
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)


def load_timing_cache(config: Any, path: Path) -> Any:
    """Attach the timing cache at ``path`` (an empty one when absent or rejected)."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):  # False: refuse a cache of another device
        log.info("timing cache %s does not fit this GPU/TensorRT; starting an empty one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    elif data:
        log.info("using timing cache %s", path)
    return cache


def save_timing_cache(config: Any, path: Path) -> None:
    """Write the build's timing cache back (atomically: concurrent builds may share it)."""
    timings = config.get_timing_cache()
    if timings is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, bytes(timings.serialize()))
    log.info("wrote timing cache %s", path)


def attach_progress_monitor(trt: Any, config: Any) -> bool:
    """Log build phases through TensorRT 10's IProgressMonitor; False where 8.x has none."""
    if not has_progress_monitor(trt.__version__):
        return False
    config.progress_monitor = make_progress_monitor(trt)
    return True


def make_progress_monitor(trt: Any) -> Any:
    """An IProgressMonitor that logs each phase's start and end and every tenth step (the
    class needs trt at definition time, hence a factory)."""

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = int(num_steps)
            within = f" (in {parent_phase})" if parent_phase else ""
            log.info("TensorRT build: %s started%s, %d steps", phase_name, within, num_steps)

        def step_complete(self, phase_name, step):
            total = self.steps.get(phase_name, 0)
            if total >= 10 and (step + 1) % max(1, total // 10) == 0:
                log.info("TensorRT build: %s %d/%d", phase_name, step + 1, total)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            log.info("TensorRT build: %s finished", phase_name)

    return BuildProgress()
