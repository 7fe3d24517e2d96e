#!/usr/bin/env bash
# Cross-utterance LSTM state (admmq rescore --carry-over) on n-best lists of consecutive PTB sentences:
# perplexity of the references and WER, with and without carry-over (recipes/ptb/RESULTS.md §5).
#
#   recipes/ptb/run_carry_over.sh --std STD.pt [--stage N] [--exp DIR] [--nbest-dir DIR] [--make-nbest true]
#
# Stages (logs and outputs under --exp, default recipes/ptb/exp_carry_over):
#   1 the n-best lists: --nbest-dir (default data/ptb-tts-consecutive: dev/ and test/); with --make-nbest
#     true made here with admmq nbest synth from every eligible sentence of ptb.valid.txt lines 1-552 (dev)
#     and ptb.test.txt lines 1-636 (test), in line order (about 4.6 s per utterance and job)
#   2 the 4-gram: recipes/common/make_4gram.sh on PTB train (or --ngram FILE); its EM interpolation weight
#     with the LSTM on PTB valid (admmq interpolate)
#   3 perplexity of the test references (each voice one chain, --recording-pattern '([^_]*)_'), LSTM alone
#     and interpolated, --carry-over none / recording / kaldi; and of all of ptb.test.txt as one chain
#   4 rescore the test list, LM scale and insertion penalty tuned on the dev list (same carry-over), for the
#     LSTM alone, the LSTM + 4-gram (linear, EM weights) and the LSTM with the first-pass LM (Kaldi's
#     log-linear --nn-weight 0.8), each --carry-over none, recording and kaldi; --nj at a time
#   5 the table (markdown) -> $exp/carry_over.md, printed
set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

std=""
stage=1
exp=$RECIPE/exp_carry_over
nbest_dir=$ROOT/data/ptb-tts-consecutive
make_nbest=false
ngram=""
nj=2
. "$ROOT/recipes/common/parse_options.sh"
[ -n "$std" ] || { echo "$0: --std MODEL is required (e.g. ../shared/models/ptb-std-1x200/best.pt)" >&2; exit 1; }
. "$RECIPE/cmd.sh"
admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
mkdir -p "$exp/log"
PTB=$ROOT/data/ptb
PATTERN='([^_]*)_'
export OMP_NUM_THREADS=1

if [ "$stage" -le 1 ] && $make_nbest; then
  echo "== stage 1: consecutive n-best lists (admmq nbest synth)"
  nbest_dir=$exp/nbest
  mkdir -p "$nbest_dir"
  gzip -cd "$PTB/ptb.valid.txt.gz" | head -n 552 > "$nbest_dir/valid_1-552.txt"
  gzip -cd "$PTB/ptb.test.txt.gz" | head -n 636 > "$nbest_dir/test_1-636.txt"
  $train_cmd "$exp/log/synth_dev.log" "$admmq" nbest synth --text "$nbest_dir/valid_1-552.txt" -o "$nbest_dir/dev" \
    --sentences 1000 --letter d --quiet
  $train_cmd "$exp/log/synth_test.log" "$admmq" nbest synth --text "$nbest_dir/test_1-636.txt" \
    -o "$nbest_dir/test" --sentences 1000 --letter t --quiet
elif $make_nbest; then
  nbest_dir=$exp/nbest
fi
nb=$nbest_dir

arpa=${ngram:-$exp/ptb.4g.arpa}
if [ "$stage" -le 2 ]; then
  echo "== stage 2: 4-gram and its interpolation weight"
  [ -n "$ngram" ] || [ -f "$arpa" ] || bash "$ROOT/recipes/common/make_4gram.sh" "$PTB/ptb.train.txt.gz" "$arpa" \
    2> "$exp/log/4gram.log"
  "$admmq" interpolate --lm "$std" --ngram "$arpa" --valid "$PTB/ptb.valid.txt.gz" -o "$exp/weights.json" --quiet \
    > "$exp/log/interpolate.log" 2>&1
fi

ppl() { "$admmq" eval "$@" --json --quiet | sed 's/.*"ppl": \([0-9.]*\).*/\1/'; }
if [ "$stage" -le 3 ]; then
  echo "== stage 3: perplexities"
  for carry in none recording kaldi; do
    opts="--carry-over $carry"; [ $carry = recording ] && opts="$opts --recording-pattern $PATTERN"
    echo "refs lstm $carry $(ppl --lm "$std" --text "$nb/test/text.gz" --text-format kaldi $opts)"
    echo "refs lstm+4gram $carry $(ppl --weights "$exp/weights.json" --text "$nb/test/text.gz" --text-format kaldi $opts)"
    opts="--carry-over $carry"; [ $carry = recording ] && opts="$opts --recording-pattern ^"
    echo "ptbtest lstm $carry $(ppl --lm "$std" --text "$PTB/ptb.test.txt.gz" --text-format plain $opts)"
  done > "$exp/ppl.txt"
  cat "$exp/ppl.txt"
fi

rescore_one() {  # name carry-over LM-options...
  local name=$1 carry=$2
  shift 2
  local opts="--carry-over $carry"
  [ "$carry" = recording ] && opts="$opts --recording-pattern $PATTERN"
  [ -f "$exp/rescore/$name.$carry/summary.json" ] && return 0
  "$admmq" rescore "$nb/test" "$@" $opts --dev "$nb/dev" --dev-ref "$nb/dev/text.gz" --ref "$nb/test/text.gz" \
    --utt2subset "$nb/test/utt2subset.gz" --threads 1 --quiet -o "$exp/rescore/$name.$carry" \
    > "$exp/log/rescore_$name.$carry.log" 2>&1
}
if [ "$stage" -le 4 ]; then
  echo "== stage 4: rescoring (tuned on dev)"
  mkdir -p "$exp/rescore"
  n=0
  for carry in none recording kaldi; do
    for spec in "lstm:--lm $std" "lstm+4gram:--weights $exp/weights.json" "lstm+firstpass:--lm $std --nn-weight 0.8"; do
      rescore_one "${spec%%:*}" "$carry" ${spec#*:} &
      n=$((n + 1))
      [ $((n % nj)) -eq 0 ] && wait
    done
  done
  wait
  for f in "$exp"/rescore/*/summary.json; do [ -f "$f" ] || { echo "$0: a rescoring job failed ($exp/log)" >&2; exit 1; }; done
fi

if [ "$stage" -le 5 ]; then
  echo "== stage 5: table"
  weight() { grep -oE "\"$2\": [-0-9.e]+" "$1/summary.json" | tail -1 | sed 's/.*: //'; }  # the chosen ones
  {
    echo "| LM | carry-over | PPL test refs | LM scale, wip (dev) | rms | slt | total WER |"
    echo "|---|---|---|---|---|---|---|"
    for name in lstm lstm+4gram lstm+firstpass; do
      for carry in none recording kaldi; do
        d=$exp/rescore/$name.$carry
        p=$(awk -v n="$name" -v c="$carry" '$1 == "refs" && $2 == n && $3 == c { printf "%.2f", $4 }' "$exp/ppl.txt")
        row=$("$admmq" wer "$nb/test/text.gz" "$d/text" --utt2subset "$nb/test/utt2subset.gz" --table-row x \
              --columns rms,slt,total)
        echo "| $name | $carry | ${p:--} | $(weight "$d" lm_scale), $(weight "$d" wip) ${row#| x }"
      done
    done
    d=$exp/rescore/lstm.none
    for pick in first_pass oracle; do
      echo "| ($pick) | | | $(awk -v p="# $pick" '$0 == p { on = 1; next } /^# / { on = 0 }
        on && /%WER/ { w[$1] = $3 } END { printf "| %s | %s | %s |", w["rms"], w["slt"], w["total"] }' "$d/wer.txt")"
    done
  } > "$exp/carry_over.md"
  cat "$exp/carry_over.md"
fi
