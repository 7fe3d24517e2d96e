#!/usr/bin/env bash
# Corpus-size study (recipes/ptb/RESULTS_admm.md §11): do admmq's quantization defaults hold on a small and a
# large corpus alike?  For each size (the first 10,000, 24,000 and all 42,068 sentences of PTB train;
# validation on all of PTB valid):
#   - the reference STD a user would train: full precision with dropout, newbob to convergence; one run per
#     --std-dropouts value, the best on validation is the reference; and the unregularised STD (dropout 0);
#   - every quantized row from the reference STD with the defaults (recipes/ptb/run.sh --cpu-full: train,
#     export, test perplexity once per row, interpolation with the 4-gram, ptb-tts WER on the all-PTB rows).
#
#   recipes/ptb/run_sizes.sh [--stage N] [--stop-stage N] [--sizes "10000 24000 0"] [--std-dropouts "0.3 0.5"]
#                            [--std-epochs N] [--rows "..."] [--row-epochs "row=N ..."] [--epochs N]
#                            [--wer-sizes "0"] [--nj N] [--exp DIR] [--std0-all CHECKPOINT]
#
# Stages (logs under $exp/log/, each run skipped when its .done marker exists, resumed when killed):
#   1 data       PTB train/valid/test (recipes/ptb/run.sh stage 1) and the 4-gram (stage 2), once
#   2 std        per size: `admmq train` (fp) with each --std-dropouts value and with dropout 0 (or, for all of
#                PTB, --std0-all: an unregularised STD trained before); $exp/size_N/reference.txt names the
#                reference (best validation perplexity)
#   3 rows       per size: run.sh --cpu-full --std-model <reference> --max-sentences N --rows ... (stages 3-6;
#                rescoring only for the sizes in --wer-sizes); the unregularised STD's test perplexity too
#   4 report     per size: `admmq report` of the rows and both STDs ($exp/size_N/RESULTS.md)
# Options (defaults in brackets):
#   --sizes "N ..."          training sentences per size, 0 = all [10000 24000 0]
#   --std-dropouts "D ..."   dropout values tried for the reference STD [0.3 0.5]
#   --std-epochs N           most epochs of an STD (newbob stops it earlier) [40]
#   --rows "..."             quantized rows [admm_node_pm124 admm_layer_0pm1 admm_layer_pm1 binlin bin]
#   --epochs N               epochs per row [5]
#   --row-epochs "row=N .."  [admm_layer_pm1=8 binlin=8 bin=8]
#   --wer-sizes "N ..."      sizes whose rows rescore ptb-tts (tuned on dev) [0]
#   --nj N                   jobs at once [2]
#   --exp DIR                [recipes/ptb/exp_sizes]
#   --std0-all FILE          the unregularised all-PTB STD, if trained already (the shared ptb-std-1x200)
set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
sizes="10000 24000 0"
std_dropouts="0.3 0.5"
std_epochs=40
rows="admm_node_pm124 admm_layer_0pm1 admm_layer_pm1 binlin bin"
epochs=5
row_epochs="admm_layer_pm1=8 binlin=8 bin=8"
wer_sizes="0"
nj=2
exp="$RECIPE/exp_sizes"
data="$RECIPE/data"
std0_all=""

. "$ROOT/recipes/common/parse_options.sh"
. "$RECIPE/cmd.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
mkdir -p "$exp/log"
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
say() { echo "$(date '+%H:%M:%S') $*"; }

pids=()
start_job() { "$@" & pids+=($!); if [ "${#pids[@]}" -ge "$nj" ]; then wait_jobs; fi; }
wait_jobs() { local rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; pids=(); return $rc; }

train_std() {  # size dropout dir
  local n=$1 d=$2 dir=$3 args
  [ -f "$dir/.done" ] && return 0
  if [ -f "$dir/last.pt" ]; then args="--resume $dir"; else
    args="--train $data/ptb.train.txt --valid $data/ptb.valid.txt -o $dir --max-sentences $n --dropout $d --epochs $std_epochs"
  fi
  $train_cmd "$exp/log/$(basename "$(dirname "$dir")")_$(basename "$dir").log" \
    OMP_NUM_THREADS=1 "$admmq" train $args --quiet "&&" touch "$dir/.done"
}

if run_stage 1; then
  say "stage 1: data and the 4-gram"
  "$RECIPE/run.sh" --cpu-full --stage 1 --stop-stage 2 --exp "$exp/lm_exp" --data "$data"
fi
arpa="$exp/lm_exp/lm/ptb.4g.arpa"

if run_stage 2; then
  say "stage 2: STDs per size (dropouts $std_dropouts, and 0)"
  for n in $sizes; do
    mkdir -p "$exp/size_$n"
    for d in $std_dropouts; do start_job train_std "$n" "$d" "$exp/size_$n/std_d$d"; done
    if [ "$n" = 0 ] && [ -n "$std0_all" ]; then
      mkdir -p "$exp/size_0/std_d0"; cp "$std0_all" "$exp/size_0/std_d0/best.pt"; touch "$exp/size_0/std_d0/.done"
    else
      start_job train_std "$n" 0 "$exp/size_$n/std_d0"
    fi
  done
  wait_jobs || { echo "run_sizes.sh: an STD run failed; see $exp/log/" >&2; exit 1; }
  for n in $sizes; do  # the reference: the best validation perplexity among the dropout runs
    best=""; best_ppl=""
    for d in $std_dropouts; do
      ppl=$("$admmq" eval --lm "$exp/size_$n/std_d$d/best.pt" --text "$data/ptb.valid.txt" --quiet | tail -n 1 \
            | sed -E 's/.*ppl ([0-9.]+).*/\1/')
      if [ -z "$best" ] || awk "BEGIN{exit !($ppl < $best_ppl)}"; then best="std_d$d"; best_ppl=$ppl; fi
    done
    echo "$best $best_ppl" > "$exp/size_$n/reference.txt"
    say "  size $n: reference $best (valid $best_ppl)"
  done
fi

if run_stage 3; then
  say "stage 3: quantized rows per size from its reference STD"
  for n in $sizes; do
    ref="$exp/size_$n/$(cut -d' ' -f1 "$exp/size_$n/reference.txt")/best.pt"
    stop=4; [[ " $wer_sizes " == *" $n "* ]] && stop=6
    "$RECIPE/run.sh" --cpu-full --std-model "$ref" --max-sentences "$n" --rows "std $rows" --epochs "$epochs" \
      --row-epochs "$row_epochs" --exp "$exp/size_$n/rows" --data "$data" --ngram "$arpa" --nj "$nj" \
      --stage 3 --stop-stage "$stop" 2>&1 | tee "$exp/log/rows_$n.log"
    "$admmq" eval --lm "$exp/size_$n/std_d0/best.pt" --text "$data/ptb.test.txt" --json --quiet \
      > "$exp/size_$n/std_d0/test_eval.json"
  done
fi

if run_stage 4; then
  say "stage 4: reports"
  for n in $sizes; do
    "$admmq" report "$exp/size_$n/rows" -o "$exp/size_$n/RESULTS.md" --title "PTB, training size $n (0 = all)" \
      --note "recipes/ptb/run_sizes.sh: rows from the reference STD $(cat "$exp/size_$n/reference.txt")"
    say "  $exp/size_$n/RESULTS.md"
  done
fi
