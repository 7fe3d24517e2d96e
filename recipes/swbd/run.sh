#!/usr/bin/env bash
# Switchboard recipe: ADMM-quantized LSTM LMs rescoring eval2000 n-best lists from a Kaldi
# egs/swbd/s5c setup, scored by Kaldi's own local/score.sh and by admmq (swbd/callhm table).
#
#   recipes/swbd/run.sh --kaldi-dir ~/kaldi/egs/swbd/s5c [--stage N] [--stop-stage N] [--quick]
#
# Stages (per-stage logs under --exp, .done markers: a rerun skips finished work):
#   1 LM text from data/train/text (+ --fisher-text), last --valid-lines held out; vocabulary data/lang/words.txt
#   2 train the LMs in --models (NAME:METHOD[:QSET:TYING], e.g. admm-pm1:admm:pm1:layer) with $train_cmd
#   3 export the quantized ones bit-packed; EM-tune each LM's interpolation weight with --ngram on the held-out text
#   4 n-best lists: $decode_cmd JOB=1:nj lattice-to-nbest | nbest-to-linear (with and without the old LM,
#     lattice-lmrescore --lm-scale=-1 with --old-lang's G.fst), one Kaldi n-best directory per job
#   5 rescore each job with admmq rescore (LSTM + --ngram interpolated; and the 4-gram alone)
#   6 write the new LM costs back: linear-to-nbest | nbest-to-lattice into DECODE_DIR.admmq_NAME/lat.JOB.gz,
#     then Kaldi's own local/score.sh scores them
#   7 admmq's WER table (swbd, callhm, total) of every LM at --lm-scale, merged over the jobs -> RESULTS.md;
#     counted as Kaldi's local/score_sclite.sh counts (hubscr.pl: stm, glm, its hypothesis filter and
#     acronym map) when $eval_data/stm exists, else against $eval_data/text
# Every path below is an option; relative ones are relative to --kaldi-dir. Job commands: cmd.sh.

set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
kaldi_dir=.                                   # the egs/swbd/s5c directory
train_text=data/train/text                    # Kaldi text of the Switchboard training transcripts
fisher_text=""                                # optional: more LM text (Kaldi text or plain), e.g. Fisher
words_txt=data/lang/words.txt                 # vocabulary of the LMs and of the lattices
eval_data=data/eval2000                       # its stm + glm (else text) hold the references (swbd sw_*, callhm en_*)
acronyms=data/local/dict_nosp/acronyms.map    # Kaldi's acronym map (local/map_acronyms_ctm.py), when present
decode_dir=exp/chain/tdnn7r_sp/decode_eval2000_sw1_fsh_fg   # lat.JOB.gz and num_jobs
old_lang=data/lang_sw1_fsh_fg                 # lang dir of the first-pass LM (its G.fst is removed)
ngram=data/local/lm/sw1_fsh.o4g.kn.gz         # the sw1_fsh 4-gram ARPA to interpolate with
exp=exp/admmq                                 # everything this recipe writes
models="std:fp admm-pm1:admm:pm1:layer admm-pm12:admm:pm12:node"
epochs=""                                     # default: admmq's per method; --quick: 1
valid_lines=5000                              # held-out LM text lines (from the end of the training text)
nbest=100                                     # N of the n-best lists
acwt=0.1                                      # acoustic scale for lattice-to-nbest (Kaldi's default)
lm_scale=10                                   # LMWT of admmq's own WER table
device=auto
train_nj=1                                    # data-parallel training processes per LM (admmq train --nj)
quick=false                                   # CPU-sized: tiny LSTM, 1 epoch, 20k sentences

. "$ROOT/recipes/common/parse_options.sh"
. "$RECIPE/cmd.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
cd "$kaldi_dir"
mkdir -p "$exp/log"
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
size_opts=""; max_sentences=0
if $quick; then size_opts="--embed-dim 32 --hidden-dim 32"; epochs="${epochs:-1}"; max_sentences=20000; fi
nj=$(cat "$decode_dir/num_jobs")
# name:method[:qset:tying] -> fields
model_names() { for m in $models; do echo "${m%%:*}"; done; }
model_opts() {
  local IFS=:; set -- $1
  echo "--method $2${3:+ --qset $3}${4:+ --tying $4}"
}
lm_file() { if [ -f "$exp/$1/lm.admmq" ]; then echo "$exp/$1/lm.admmq"; else echo "$exp/$1/best.pt"; fi; }

if run_stage 1; then
  echo "== stage 1: LM text and vocabulary"
  mkdir -p "$exp/data"
  if [ ! -f "$exp/data/.done" ]; then
    { cut -d' ' -f2- "$train_text"
      if [ -n "$fisher_text" ]; then
        if head -n1 "$fisher_text" | grep -q '^[^ ]*[-_][^ ]* '; then cut -d' ' -f2- "$fisher_text"; else cat "$fisher_text"; fi
      fi; } | awk 'NF > 0' > "$exp/data/all.txt"
    total=$(wc -l < "$exp/data/all.txt")
    [ "$total" -gt "$valid_lines" ] || { echo "$0: only $total LM text lines, need more than --valid-lines $valid_lines" >&2; exit 1; }
    head -n $((total - valid_lines)) "$exp/data/all.txt" > "$exp/data/train.txt"
    tail -n "$valid_lines" "$exp/data/all.txt" > "$exp/data/valid.txt"
    cp "$words_txt" "$exp/data/words.txt"
    touch "$exp/data/.done"
  fi
  wc -l "$exp/data/train.txt" "$exp/data/valid.txt"
fi

if run_stage 2; then
  echo "== stage 2: train the LMs ($models)"
  for m in $models; do
    name=${m%%:*}
    [ -f "$exp/$name/.done" ] && continue
    resume=""; [ -f "$exp/$name/last.pt" ] && resume="--resume $exp/$name"   # a killed run continues
    if [ -n "$resume" ]; then args="$resume"; else
      args="--train $exp/data/train.txt --valid $exp/data/valid.txt -o $exp/$name --words-txt $exp/data/words.txt \
        $(model_opts "$m") $size_opts ${epochs:+--epochs $epochs} --max-sentences $max_sentences"
    fi
    $train_cmd "$exp/log/train_$name.log" "$admmq" train $args --device "$device" --nj "$train_nj" --quiet
    touch "$exp/$name/.done"
    tail -n 1 "$exp/$name/train.log"
  done
fi

if run_stage 3; then
  echo "== stage 3: export, interpolation weights with the 4-gram"
  for m in $models; do
    name=${m%%:*}; method=$(echo "$m" | cut -d: -f2)
    if [ "$method" != fp ] && [ ! -f "$exp/$name/.export.done" ]; then
      $train_cmd "$exp/log/export_$name.log" "$admmq" export --lm "$exp/$name/best.pt" -o "$exp/$name/lm.admmq" --quiet
      touch "$exp/$name/.export.done"
    fi
    if [ ! -f "$exp/$name/.interp.done" ]; then
      $train_cmd "$exp/log/interpolate_$name.log" "$admmq" interpolate --lm "$(lm_file "$name")" --ngram "$ngram" \
        --valid "$exp/data/valid.txt" -o "$exp/$name/weights.json" --quiet
      touch "$exp/$name/.interp.done"
    fi
  done
fi

nbdir=$exp/nbest
if run_stage 4; then
  echo "== stage 4: $nbest-best lists of $decode_dir ($nj jobs)"
  if [ ! -f "$nbdir/.done" ]; then
    mkdir -p "$nbdir/log"
    for j in $(seq "$nj"); do mkdir -p "$nbdir/$j"; cp "$words_txt" "$nbdir/$j/words.txt"; done
    # graph cost with the first-pass LM (lmwt.withlm), then with it removed (lmwt.nolm)
    $decode_cmd JOB=1:"$nj" "$nbdir/log/lat2nbest.JOB.log" \
      lattice-to-nbest --acoustic-scale="$acwt" --n="$nbest" "ark:gunzip -c $decode_dir/lat.JOB.gz|" ark:- \| \
      nbest-to-linear ark:- "ark,t:$nbdir/JOB/ali" "ark,t:$nbdir/JOB/words" "ark,t:$nbdir/JOB/lmwt.withlm" \
        "ark,t:$nbdir/JOB/acwt"
    $decode_cmd JOB=1:"$nj" "$nbdir/log/nolm.JOB.log" \
      lattice-to-nbest --acoustic-scale="$acwt" --n="$nbest" "ark:gunzip -c $decode_dir/lat.JOB.gz|" ark:- \| \
      lattice-lmrescore --lm-scale=-1.0 ark:- "fstproject --project_type=output $old_lang/G.fst |" ark:- \| \
      nbest-to-linear ark:- ark:/dev/null ark:/dev/null "ark,t:$nbdir/JOB/lmwt.nolm"
    touch "$nbdir/.done"
  fi
fi

# rescoring runs: every LM interpolated with the 4-gram, and the 4-gram alone (baseline)
runs="4gram $(model_names)"
if run_stage 5; then
  echo "== stage 5: rescore ($nj jobs)"
  for r in $runs; do
    [ -f "$exp/rescore_$r/.done" ] && continue
    if [ "$r" = 4gram ]; then lm_args="--ngram $ngram"; else lm_args="--weights $exp/$r/weights.json"; fi
    mkdir -p "$exp/rescore_$r"
    $decode_cmd JOB=1:"$nj" "$exp/rescore_$r/log/rescore.JOB.log" \
      "$admmq" rescore "$nbdir/JOB" $lm_args --lm-scale "$lm_scale" --wip 0 --device "$device" \
        -o "$exp/rescore_$r/JOB" --quiet
    touch "$exp/rescore_$r/.done"
  done
fi

if run_stage 6; then
  echo "== stage 6: new LM costs back into lattices; Kaldi's local/score.sh"
  lang_dir=$(dirname "$words_txt")
  for r in $runs; do
    out=${decode_dir}.admmq_$r
    [ -f "$out/.done" ] && continue
    mkdir -p "$out/log"
    cp "$decode_dir/num_jobs" "$out/"
    $decode_cmd JOB=1:"$nj" "$out/log/lat.JOB.log" \
      linear-to-nbest "ark:$nbdir/JOB/ali" "ark:$nbdir/JOB/words" "ark:$exp/rescore_$r/JOB/lmwt.new" \
        "ark:$nbdir/JOB/acwt" ark:- \| \
      nbest-to-lattice ark:- "ark:|gzip -c >$out/lat.JOB.gz"
    if [ -x local/score.sh ]; then
      local/score.sh --cmd "$decode_cmd" "$eval_data" "$lang_dir" "$out"
    else
      echo "$0: no local/score.sh in $(pwd): skipped Kaldi scoring of $out" >&2
    fi
    touch "$out/.done"
  done
fi

if run_stage 7; then
  echo "== stage 7: admmq WER table (LMWT $lm_scale, $nj jobs merged)"
  reference="$eval_data/text"
  if [ -f "$eval_data/stm" ]; then   # as local/score_sclite.sh: hubscr.pl's rules, Kaldi's ctm filter
    reference="--stm $eval_data/stm --hyp-filter kaldi-swbd"
    [ -f "$eval_data/glm" ] && reference="$reference --glm $eval_data/glm"
    [ -f "$acronyms" ] && reference="$reference --acronym-map $acronyms"
  fi
  echo "reference: $reference"
  {
    echo "| LM | swbd WER | callhm WER | total WER |"
    echo "|----|----------|------------|-----------|"
    for r in $runs; do
      texts=""; for j in $(seq "$nj"); do texts="$texts $exp/rescore_$r/$j/text"; done
      "$admmq" wer --json $reference $texts > "$exp/rescore_$r/wer.json"
      "$admmq" wer --table-row "$r" $reference $texts
    done
  } | tee "$exp/RESULTS.md"
fi
