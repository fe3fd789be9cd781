#!/bin/bash
# Issue 18's fine-tune candidates on a CPU (no GPU lent): the GPU plan's recipes (benchmarks/training/gpu_run.py,
# CANDIDATES) at 64 tokens with bf16 autocast, so that each training takes ~16-20 min on 2 cores of a Zen 4 with
# avx512_bf16 instead of ~75 min at 128 tokens in fp32. Each model is judged on int8 ONNX, as it would be served,
# by benchmarks.evaluation.evaluate, and the verdict by benchmarks.training.gpu_verdict (docs/ablation.md,
# "Full-data candidates on CPU"). ~75 min on 2 quiet cores; run it beside nothing else.
#
#   bash benchmarks/training/cpu_candidates.sh            # models/cpu-*, reports/evaluate-*-int8.json, the verdict
#   HELDOUT=triplet-hn bash benchmarks/training/cpu_candidates.sh  # also the prompt-injection fold held out of it
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
recipe="--epochs 2 --batch-size 64 --max-seq-length 64 --max-examples 12000 --seed 13 --bf16"
declare -A LOSS=([triplet-hn]=triplet-soft [softmax]=softmax)
log() { echo "[$(date +%H:%M:%S)] $*"; }
evaluate() {  # name model_dir: reused when its report exists (delete it to redo)
    [ -f "reports/evaluate-$1-int8.json" ] || $PY -m benchmarks.evaluation.evaluate --model-dir "$2" --name "$1"
}
log "base"
evaluate base-full models/base
verdict=(base=reports/evaluate-base-full-int8.json)
for name in triplet-hn softmax; do
    log "$name"
    .venv/bin/lightguard train --if-stale --quiet --out "models/cpu-$name" --loss "${LOSS[$name]}" $recipe
    evaluate "cpu-$name" "models/cpu-$name"
    verdict+=("$name=reports/evaluate-cpu-$name-int8.json")
done
if [ -n "${HELDOUT:-}" ]; then  # the prompt-injection fold's families held out of fine-tuning too (heldout.py)
    log "heldout-prompt-injection-$HELDOUT"
    .venv/bin/lightguard train --if-stale --quiet --out "models/cpu-heldout-$HELDOUT" --loss "${LOSS[$HELDOUT]}" \
        $recipe --exclude-family prompt-injection --exclude-family injection-lookalike
    evaluate "cpu-heldout-$HELDOUT" "models/cpu-heldout-$HELDOUT"
    verdict+=("heldout-prompt-injection-$HELDOUT=reports/evaluate-cpu-heldout-$HELDOUT-int8.json")
fi
$PY -m benchmarks.training.gpu_verdict --fold prompt-injection "${verdict[@]}"
