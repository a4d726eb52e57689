#!/usr/bin/env bash
# One prepared run on a CUDA machine: the gpu-marked tests, the CUDA cases of the component
# tests, the attention ladder and the bf16 TFLOP/s benchmark. Results are copied to $OUT
# (or benchmarks/results/ when OUT is unset). Uses the machine's own torch: PYTHONPATH=.
set -uo pipefail
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu_env.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu_env.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -x tests/test_gpu.py \
  tests/test_attention.py tests/test_multi_head_attention.py tests/test_kv_cache.py tests/test_blocks.py \
  -k "gpu or cuda" 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
timeout 100 python3 -m course_lib.cli bench attention --device cuda 2>&1 | grep -v USDT
timeout 120 python3 -m course_lib.cli bench attention_tflops --device cuda 2>&1 | grep -v USDT
cp benchmarks/results/attention_cuda.* benchmarks/results/attention_tflops_cuda.* "$OUT"/ 2>/dev/null || true
ls "$OUT"
