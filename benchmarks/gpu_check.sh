#!/usr/bin/env bash
# One prepared run on a CUDA machine: the gpu-marked tests, the CUDA cases of the component
# and model tests, and the benchmarks whose CUDA figures the book shows. Results are copied
# to $OUT (or stay in benchmarks/results/ when OUT is unset). Uses the machine's own torch.
#   bash benchmarks/gpu_check.sh            # tests + GPT step + KV cache
#   bash benchmarks/gpu_check.sh attention  # also the attention ladder and bf16 TFLOP/s
set -uo pipefail
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu_env.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu_env.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_attention.py \
  tests/test_multi_head_attention.py tests/test_kv_cache.py tests/test_blocks.py tests/test_models_decoder.py \
  tests/test_models_seq2seq.py tests/test_models_vit.py tests/test_models_clip.py tests/test_generate.py \
  -k "gpu or cuda" 2>&1 | tail -12 | tee "$OUT/gpu_tests.txt"
benches="gpt_step kv_cache"
[ "${1:-}" = attention ] && benches="$benches attention attention_tflops"
for b in $benches; do
  timeout 150 python3 -m course_lib.cli bench "$b" --device cuda 2>&1 | grep "^\[bench\]"
  cp benchmarks/results/${b}_cuda.* "$OUT"/ 2>/dev/null
done
ls "$OUT"
