#!/usr/bin/env bash
# PTB recipe: train an LSTM LM on the Penn Treebank and evaluate it.
#
#   recipes/ptb/run.sh [--quick] [--stage N] [--stop-stage N] [--ptb-dir DIR] [--exp DIR]
#
# Stages: 1 data (PTB from --ptb-dir, else the copy shipped in data/ptb);
#         3 train the full-precision LM (STD); 6 evaluate and print the results.
# --quick trains on a slice of PTB for one epoch (CPU-sized, minutes).

set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
quick=false
ptb_dir=""
exp="$RECIPE/exp"
data="$RECIPE/data"
device=auto

. "$ROOT/recipes/common/parse_options.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
mkdir -p "$exp" "$data"
if $quick; then epochs=1; max_sentences=5000; else epochs=10; max_sentences=0; fi

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 1; then
  echo "== stage 1: data"
  for s in train valid test; do
    if [ -n "$ptb_dir" ]; then
      cp "$ptb_dir/ptb.$s.txt" "$data/ptb.$s.txt"
    elif [ ! -s "$data/ptb.$s.txt" ]; then
      gzip -dc "$ROOT/data/ptb/ptb.$s.txt.gz" > "$data/ptb.$s.txt"
    fi
  done
  wc -w "$data"/ptb.*.txt
fi

if run_stage 3; then
  echo "== stage 3: train STD (full precision)"
  if [ ! -f "$exp/std/.done" ]; then
    rm -rf "$exp/std"
    "$admmq" train --train "$data/ptb.train.txt" --valid "$data/ptb.valid.txt" -o "$exp/std" \
      --epochs "$epochs" --max-sentences "$max_sentences" --device "$device" --quiet > "$exp/train_std.log" 2>&1 \
      || { cat "$exp/train_std.log"; exit 1; }
    touch "$exp/std/.done"
  fi
  tail -n 3 "$exp/std/train.log"
fi

if run_stage 6; then
  echo "== stage 6: results"
  "$admmq" eval --lm "$exp/std" --text "$data/ptb.test.txt" --quiet
fi
