#!/usr/bin/env bash
# One prepared run on a CUDA machine (an H200: about 6 minutes): the CUDA cases of the tests,
# then the benchmarks whose CUDA figures the book shows, each under its own timeout and all
# under one deadline, so that a failure or a hang never stops the rest. Uses the machine's own
# python3 and torch; comparisons with Hugging Face are skipped (and said so) where
# `transformers` is not installed, since such a machine has no network.
#
#   bash benchmarks/gpu_check.sh                          # on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --smoke     # anywhere: every code path, tiny sizes
#   bash benchmarks/gpu_check.sh attention                # also the attention ladder and bf16 TFLOP/s
#
# Results go to benchmarks/results/ (a temporary folder with --smoke). When OUT is set (a
# device run brings back at most 8 files from it), OUT receives gpu_log.txt, every result
# packed in gpu_results.tgz, and the Markdown tables of the main benchmarks.
set -uo pipefail
DEVICE=cuda
SMOKE=0
EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="${2:?--device needs a value}"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    attention) EXTRA="attention attention_tflops"; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ "$SMOKE" = 1 ]; then RES="$(mktemp -d)"; else RES="benchmarks/results"; fi
OUT="${OUT:-$RES}"
mkdir -p "$RES" "$OUT"
LOG="$OUT/gpu_log.txt"
: >"$LOG"
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))  # the device tool allows 600 s per command
SUMMARY=()

log() { echo "$*" | tee -a "$LOG"; }

# step NAME TIMEOUT COMMAND...: run under min(TIMEOUT, time left), log it, never stop the script.
step() {
  local name="$1" limit="$2"; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 20 ]; then
    SUMMARY+=("$name: not run (deadline reached)"); log "== $name: not run, deadline reached"; return
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  log "== $name (timeout ${limit}s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local status="ok"
  [ "$rc" = 124 ] && status="TIMED OUT"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && status="FAILED (exit $rc)"
  SUMMARY+=("$name: $status, $((SECONDS - start)) s")
}

log "gpu_check: device=$DEVICE smoke=$SMOKE results=$RES $(date -u '+%Y-%m-%d %H:%M UTC')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"

# What is installed decides what runs: torch and einops are needed, transformers only for the
# comparisons with Hugging Face, matplotlib only for the plots.
"$PY" - "$DEVICE" <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, sys
for name in ("torch", "einops", "numpy", "matplotlib", "transformers"):
    try:
        print(f"{name} {importlib.import_module(name).__version__}")
    except ImportError:
        print(f"{name} MISSING")
import torch
print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
if ! "$PY" -c "import torch, einops" 2>/dev/null; then
  log "gpu_check: torch or einops is missing; nothing can run"; exit 1
fi
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  log "gpu_check: --device cuda, but torch sees no CUDA device"; exit 1
fi
HAVE_HF=1
if ! "$PY" -c "import transformers" 2>/dev/null; then
  HAVE_HF=0
  log "gpu_check: transformers is not installed: SKIPPING the Hugging Face comparisons (benchmarks" \
      "generate and gpt_step, and the HF parity tests)"
  SUMMARY+=("generate, gpt_step: skipped (no transformers)")
fi

# Tests: the CUDA-parametrised cases and the gpu-marked ones (on the CPU, in smoke mode, the
# CPU cases of the fixed-shape decoding step instead, to check the command itself).
TESTS="tests/test_gpu.py tests/test_attention.py tests/test_multi_head_attention.py tests/test_kv_cache.py
  tests/test_blocks.py tests/test_norm.py tests/test_models_decoder.py tests/test_models_seq2seq.py
  tests/test_models_vit.py tests/test_models_clip.py tests/test_generate.py tests/test_rnn.py
  tests/test_attention_bias.py"
SELECT="gpu or cuda"
[ "$SMOKE" = 1 ] && SELECT="cpu and cuda_graph"
# shellcheck disable=SC2086  # TESTS is a list of paths
step tests 120 "$PY" -m pytest -q -p no:cacheprovider -p no:xdist $TESTS -k "$SELECT"

# Grading under the CUDA build of torch (whose kernels once all scored 0): one assignment's
# mistakes and alternatives through the whole pipeline, sandbox included, when nbgrader is there.
if "$PY" -c "import nbgrader, nbclient" 2>/dev/null; then
  step grading 150 "$PY" -m pytest -q -p no:cacheprovider -p no:xdist tests/test_embeddings_exercise.py \
    tests/test_grading_warnings.py::test_warnings_go_to_stdout_not_stderr
else
  SUMMARY+=("grading: skipped (nbgrader is not installed)")
fi

MODE=""  # full sizes and repeats: the three fit in about three minutes on an H200
[ "$SMOKE" = 1 ] && MODE="--smoke"
BENCHES="kv_cache"
[ "$HAVE_HF" = 1 ] && BENCHES="generate kv_cache gpt_step"
for b in $BENCHES $EXTRA; do
  step "bench $b" 150 "$PY" -m course_lib.cli bench "$b" --device "$DEVICE" --out "$RES" $MODE
done
# The step-loop RNNs launch a kernel per time step: the quick lengths (32, 128, 512) keep it short.
# rnn has no smoke mode; nanogpt_step needs no Hugging Face.
[ "$SMOKE" = 0 ] && step "bench rnn" 120 "$PY" -m course_lib.cli bench rnn --device "$DEVICE" --out "$RES" --quick
step "bench nanogpt_step" 90 "$PY" -m course_lib.cli bench nanogpt_step --device "$DEVICE" --out "$RES" $MODE

# The RNN-vs-Transformer benchmark is a script of its own (another chapter's), when present.
for f in benchmarks/bench_rnn_vs_transformer_cuda.py benchmarks/bench_rnn_vs_transformer.py; do
  if [ -f "$f" ]; then
    if [ "$SMOKE" = 1 ]; then
      step "$(basename "$f" .py)" 150 "$PY" "$f" --device "$DEVICE" --out "$RES" --smoke
    else
      step "$(basename "$f" .py)" 150 "$PY" "$f" --device "$DEVICE" --out "$RES"
    fi
    break
  fi
done

log ""
log "== summary ($SECONDS s in all)"
for line in "${SUMMARY[@]}"; do log "  $line"; done
if [ "$OUT" != "$RES" ]; then
  tar czf "$OUT/gpu_results.tgz" -C "$RES" . && log "packed $(ls "$RES" | wc -l) result files into $OUT/gpu_results.tgz"
  for name in generate kv_cache gpt_step rnn nanogpt_step rnn_vs_transformer; do
    suffix="_$DEVICE"
    [ "$DEVICE" = cpu ] && suffix=""
    [ -f "$RES/$name$suffix.md" ] && cp "$RES/$name$suffix.md" "$OUT/"
  done
fi
ls "$OUT"
