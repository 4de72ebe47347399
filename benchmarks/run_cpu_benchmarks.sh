#!/usr/bin/env bash
# Re-runs every CPU figure the README cites and writes the outputs beside this script.
# Run from the repository root with .venv active, on an otherwise idle machine:
#   bash benchmarks/run_cpu_benchmarks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DEMO=training/checkpoints/demo/bisestdc_synthetic.pt
{ echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores)"; } \
  > benchmarks/cpu_environment.txt

# 1. Engine latency: uint8 frame in -> uint8 labels out through Segmenter.
python -m bisestdc_core.cli.benchmark --engines onnxruntime torch --models bisestdc stdc1 stdc2 \
  --sizes 256x512 512x1024 --warmup 3 --runs 20 --device cpu --out benchmarks \
  --name cpu_latency --note "Idle 2-core CPU; random weights (latency does not depend on values); frame size = network size."

# 1b. Per precision: ONNX Runtime fp32 / int8 QDQ, PyTorch fp32 / bf16, with same-run
#     matrix-product ceilings.
python -m benchmarks.cpu_precision --out benchmarks --name cpu_precision

# 1c. Accuracy kept by int8 on the 60 synthetic val scenes (the demo checkpoint's val split).
python -m bisestdc_core.data.synthetic --out data/synthetic --frames 60 --split val \
  --height 256 --width 512 --seed 2
python -m benchmarks.int8_accuracy --weights "$DEMO" --dataset synthetic --root data/synthetic \
  --out benchmarks --name int8_accuracy_synthetic

# 2. Node overhead per frame (everything but the engine's inference), demo checkpoint.
python -m benchmarks.node_overhead --weights "$DEMO" --model-name bisestdc --engine onnxruntime \
  --network-size 256x512 --iterations 40 2>&1 | tee benchmarks/node_overhead.txt

# 3. Soak: twice the sustainable rate for 10 minutes, node RSS growth.
python -m benchmarks.soak --minutes 10 --size 512x1024 --network-size 256x512 \
  2>&1 | tee benchmarks/soak.txt
