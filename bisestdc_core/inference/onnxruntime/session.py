"""ONNX Runtime sessions: execution providers, session options and thread settings.

CPUExecutionProvider by default (all graph optimisations, one intra-op thread per usable
core, idle threads sleeping); CUDAExecutionProvider first when it is installed and a CUDA
device is asked for. Used by the engine (:mod:`.engine`), quantization and the benchmarks.
"""

from __future__ import annotations

import os

import onnxruntime as ort


def usable_cores() -> int:
    """Cores this process may run on (affinity/cgroup-aware where the OS tells us)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cuda_provider_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def make_session(onnx_path: str | os.PathLike, device: str = "cpu",
                 threads: int | None = None, spinning: bool = False,
                 int8: bool = False, profile_prefix: str | os.PathLike | None = None,
                 ) -> ort.InferenceSession:
    """An InferenceSession with ORT_ENABLE_ALL and sensible threading.

    Args:
        device: ``cpu`` or ``cuda[:i]``; CUDA falls back to CPU inside ORT for missing kernels.
        threads: intra-op threads (default: usable cores). Inter-op parallelism is off: the
            graph is one chain, and a second pool would only compete for the same cores.
        spinning: let idle pool threads spin (ONNX Runtime's default) instead of sleeping.
        int8: the graph is a QDQ graph. Its convolutions run as QLinearConv in NHWC, so the
            blocked (NCHWc) layout only serves the float head, and converting into it cost
            more than it saved (benchmarks/int8_profile.txt).
        profile_prefix: write ONNX Runtime's per-operator profile there (benchmarks).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads sleep instead of spinning: in the node they share the cores with
    # decoding, rendering and publishing (and other nodes), and a spinning pool takes those
    # cores away (benchmarks/ort_spinning.txt: both settings measured side by side).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    providers: list = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if not cuda_provider_available():
            raise RuntimeError("ONNX Runtime has no CUDAExecutionProvider here "
                               "(install onnxruntime-gpu) ")
        index = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    return ort.InferenceSession(str(onnx_path), options, providers=providers,
                                disabled_optimizers=["NchwcTransformer"] if int8 else None)
