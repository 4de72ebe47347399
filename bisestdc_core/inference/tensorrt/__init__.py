"""The TensorRT engine, one job per module.

* :mod:`.platform`: the one error type (:class:`.platform.TensorRTUnavailable`), lazy imports
  of tensorrt/pycuda/cuda-python, versions, GPU facts (from CUDA, never torch);
* :mod:`.options`: the build and run options (CLI flags and node parameters);
* :mod:`.cache_key`: the engine cache key, sidecar (with the engine's size and sha256),
  staleness and damage;
* :mod:`.calibration`: where int8 scales come from (QDQ graph by default, or the entropy
  calibrator); :mod:`.qdq_source`: the QDQ graph made for TensorRT from a float graph;
* :mod:`.builder_config` and :mod:`.build`: ahead-of-time builds (workspace, precision flags,
  DLA, persistent timing cache, progress) and the cache that reuses or heals them;
* :mod:`.runtime` (+ :mod:`.cuda_graph`, :mod:`.layer_profile`): running an engine;
* :mod:`.engine`: the Segmenter's engine; :mod:`.factory`: the registry's hooks;
* :mod:`.parser_rules`: the ONNX parser's documented rules, checked without TensorRT.

Importing the package or any module loads neither TensorRT nor pycuda (nor torch).
"""
