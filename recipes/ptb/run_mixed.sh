#!/usr/bin/env bash
# PTB mixed-precision recipe (CPU-sized): KL- and Hessian-chosen per-matrix widths
# at ~2 bits/weight against uniform 2-bit ADMM at the same size.
#
#   recipes/ptb/run_mixed.sh [--stage N] [--stop-stage N] [--exp DIR] [--fp DIR]
#                            [--train-sentences N] [--iters N] [--budget-bits B] [--widths LIST]
#
# Stages: 1 data; 2 full-precision LM (skipped with --fp DIR); 3 sensitivity
#         (kl on 500 validation sentences, hessian (Hutchinson) with 16 probes on 150);
#         4 ADMM: uniform pm12 (2 bits), mixed by kl, mixed by hessian, each from
#         the fp LM; 5 test perplexity and sizes (admmq eval, admmq info).
# RESULTS_mixed.md was measured with this script: first run with its defaults; second with
# --fp <the converged full-PTB STD run>; third also with --widths 1,0pm1,2,pow2:1,int:3,3,4,8.

set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
exp="$RECIPE/exp_mixed"
data="$RECIPE/data"
fp=""
train_sentences=10000
fp_epochs=2
iters=4
admm_sentences=4000
budget_bits=2.0
widths=1,2,3,4,8   # candidate widths / tables by name, e.g. 1,0pm1,2,pow2:1,int:3,3,4,8

. "$ROOT/recipes/common/parse_options.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p "$exp" "$data"
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 1; then
  echo "== stage 1: data"
  for s in train valid test; do
    [ -s "$data/ptb.$s.txt" ] || gzip -dc "$ROOT/data/ptb/ptb.$s.txt.gz" > "$data/ptb.$s.txt"
  done
  head -500 "$data/ptb.valid.txt" > "$data/valid500.txt"
  head -150 "$data/ptb.valid.txt" > "$data/valid150.txt"
fi

[ -n "$fp" ] || fp="$exp/fp"
if run_stage 2 && [ "$fp" = "$exp/fp" ]; then
  echo "== stage 2: full-precision LM ($train_sentences sentences, $fp_epochs epochs)"
  [ -s "$fp/best.pt" ] || $admmq train --train "$data/ptb.train.txt" --valid "$data/ptb.valid.txt" -o "$fp" \
    --max-sentences "$train_sentences" --epochs "$fp_epochs" --quiet
fi

if run_stage 3; then
  echo "== stage 3: sensitivity"
  $admmq sensitivity --lm "$fp" --valid "$data/valid500.txt" --metric kl --widths "$widths" \
    -o "$exp/sens_kl.json" --quiet
  $admmq sensitivity --lm "$fp" --valid "$data/valid150.txt" --metric hessian --trace hutchinson --probes 16 --widths "$widths" \
    -o "$exp/sens_hessian.json" --quiet
fi

admm=(--method admm --init-from "$fp" --train "$data/ptb.train.txt" --valid "$data/valid500.txt"
      --max-sentences "$admm_sentences" --epochs "$iters" --quiet)
if run_stage 4; then
  echo "== stage 4: ADMM, uniform 2 bits and mixed at $budget_bits bits/weight"
  [ -s "$exp/uniform2/best.pt" ] || $admmq train "${admm[@]}" --qset pm12 -o "$exp/uniform2"
  for m in kl hessian; do
    [ -s "$exp/mixed_$m/best.pt" ] || $admmq train "${admm[@]}" --allocation auto \
      --metric "$exp/sens_$m.json" --budget-bits "$budget_bits" --widths "$widths" -o "$exp/mixed_$m"
  done
fi

if run_stage 5; then
  echo "== stage 5: test perplexity and size"
  for r in fp uniform2 mixed_kl mixed_hessian; do
    d="$exp/$r"; [ "$r" = fp ] && d="$fp"
    echo "-- $r"
    $admmq eval --lm "$d" --text "$data/ptb.test.txt"
    $admmq info --lm "$d" --json
  done
fi
