#!/usr/bin/env bash
# The Kaldi drop-in (recipes/common/lmrescore_nbest_admmq.sh) on real Kaldi lattices made from the shipped
# ptb-tts test lists, in a directory laid out like a Kaldi recipe (egs/swbd/s5c): the commands of README's
# Kaldi section, runnable without Kaldi data.
#
#   recipes/ptb/kaldi_dropin_demo.sh [--dir DIR] [--lm MODEL] [--stage N] [--nj 2]
#
# Stages (logs in DIR/log):
#   1 Kaldi's programs: recipes/common/install_kaldi.sh (built once into ~/.cache/admmq/kaldi)
#   2 data/lang_test: words.txt (the lists' words + <unk> #0 <s> </s>), a first-pass bigram of the lists'
#     hypotheses (recipes/common/make_4gram.sh --order 2) as G.fst (arpa2fst, as utils/format_lm.sh) and
#     G.carpa (arpa-to-const-arpa, as utils/build_const_arpa_lm.sh); data/test: text, utt2spk, segments
#     (one recording per voice, in sentence order)
#   3 exp/decode_test/lat.JOB.gz, one job per voice: each hypothesis a linear lattice with its acoustic cost
#     (linear-to-nbest | nbest-to-lattice), the bigram's cost added (lattice-lmrescore-const-arpa), so the
#     lattices are what decoding with that G.carpa gives; num_jobs
#   4 the LSTM: --lm MODEL, else a small one trained here (admmq train: 1x64, 1 epoch on 10,000 PTB sentences)
#   5 the drop-in, called as egs/swbd/s5c/local/pytorchnn/run_nnlm.sh calls Kaldi's script (--N 20,
#     --weight 0.8), into exp/decode_test_admmq_nbest; its local/score.sh here: lattice-best-path at LMWT
#     8..12 (acoustic scale 1/LMWT), admmq wer
#   6 the same lattices' best path at LMWT 10 against admmq rescore of the drop-in's own archives (the same
#     choice for every utterance)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

dir=$ROOT/recipes/ptb/exp_kaldi
lm=""
stage=1
nj=2
. "$ROOT/recipes/common/parse_options.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
lists=$ROOT/data/ptb-tts/test
mkdir -p "$dir/log"
dir="$(cd "$dir" && pwd)"
cd "$dir"

if [ "$stage" -le 1 ]; then
  bash "$ROOT/recipes/common/install_kaldi.sh"
fi
kaldi="${XDG_CACHE_HOME:-$HOME/.cache}/admmq/kaldi"
. "$kaldi/path.sh"

if [ "$stage" -le 2 ]; then
  echo "== stage 2: data/lang_test (words.txt, a bigram as G.fst and G.carpa), data/test"
  mkdir -p data/lang_test data/test
  gzip -cd "$lists/words.txt.gz" | awk '{ print; if ($2 > n) n = $2 }
    END { print "<unk>", n + 1; print "#0", n + 2; print "<s>", n + 3; print "</s>", n + 4 }' > data/lang_test/words.txt
  gzip -cd "$lists/words_text.gz" | cut -d' ' -f2- > data/lang_test/hyps.txt
  bash "$ROOT/recipes/common/make_4gram.sh" --order 2 data/lang_test/hyps.txt data/lang_test/lm.arpa \
    2> log/bigram.log
  arpa2fst --disambig-symbol=#0 --read-symbol-table=data/lang_test/words.txt data/lang_test/lm.arpa \
    data/lang_test/G.fst 2> log/arpa2fst.log
  id() { awk -v w="$1" '$1 == w { print $2 }' data/lang_test/words.txt; }
  awk -F'\t' 'NR == FNR { id[$0] = 0; split($0, f, " "); id[f[1]] = f[2]; next }
    /^\\[0-9]-grams:/ { grams = 1 } /^\\end\\/ { grams = 0 }
    grams && NF >= 2 { n = split($2, w, " "); s = id[w[1]]; for (i = 2; i <= n; i++) s = s " " id[w[i]]; $2 = s }
    { print }' OFS='\t' data/lang_test/words.txt data/lang_test/lm.arpa > data/lang_test/lm_int.arpa
  arpa-to-const-arpa --bos-symbol="$(id '<s>')" --eos-symbol="$(id '</s>')" --unk-symbol="$(id '<unk>')" \
    data/lang_test/lm_int.arpa data/lang_test/G.carpa 2> log/arpa-to-const-arpa.log
  gzip -cd "$lists/text.gz" > data/test/text
  awk '{ split($1, f, "_"); print $1, f[1] }' data/test/text > data/test/utt2spk
  awk '{ split($1, f, "_"); print $1, f[1], NR, NR + 0.9 }' data/test/text > data/test/segments
fi

if [ "$stage" -le 3 ]; then
  echo "== stage 3: exp/decode_test: real lattices, $nj jobs (one voice each)"
  mkdir -p exp/decode_test
  voices=$(cut -d' ' -f2 data/test/utt2spk | sort -u)
  [ "$(echo "$voices" | wc -w)" = "$nj" ] || { echo "$0: --nj must be the number of voices ($voices)" >&2; exit 1; }
  j=0
  for v in $voices; do
    j=$((j + 1))
    src=exp/decode_test/linear.$j
    mkdir -p "$src"
    gzip -cd "$lists/words.gz" | awk -v v="${v}_" 'index($1, v) == 1' > "$src/words"
    gzip -cd "$lists/acwt.gz" | awk -v v="${v}_" 'index($1, v) == 1' > "$src/acwt"
    # a distinct alignment per hypothesis (the lists have none), graph cost 0 before the bigram is added
    awk '{ n = split($1, k, "-"); printf "%s", $1; for (i = 0; i < 3; i++) printf " %d", k[n]; print "" }' \
      "$src/words" > "$src/ali"
    awk '{ print $1, 0 }' "$src/words" > "$src/lmwt"
    linear-to-nbest "ark:$src/ali" "ark:$src/words" "ark:$src/lmwt" "ark:$src/acwt" ark:- 2> "log/lattices.$j.log" \
      | nbest-to-lattice ark:- ark:- 2>> "log/lattices.$j.log" \
      | lattice-lmrescore-const-arpa --lm-scale=1.0 ark:- data/lang_test/G.carpa \
        "ark:|gzip -c > exp/decode_test/lat.$j.gz" 2>> "log/lattices.$j.log"
  done
  echo "$nj" > exp/decode_test/num_jobs
fi

if [ -z "$lm" ]; then
  lm=exp/lstm/best.pt
  if [ "$stage" -le 4 ] && [ ! -f "$lm" ]; then
    echo "== stage 4: a small LSTM (admmq train, 1x64, 1 epoch, 10,000 PTB sentences)"
    OMP_NUM_THREADS=1 "$admmq" train --train "$ROOT/data/ptb/ptb.train.txt.gz" --valid "$ROOT/data/ptb/ptb.valid.txt.gz" \
      --embed-dim 64 --hidden-dim 64 --epochs 1 --max-sentences 10000 --device cpu --quiet -o exp/lstm \
      > log/train.log 2>&1
  fi
fi

mkdir -p local
cat > local/score.sh <<'EOF'
#!/usr/bin/env bash
# kaldi_dropin_demo.sh's scorer (Kaldi's local/score.sh needs sclite and a ctm): best path at LMWT 8..12
# (acoustic scale 1/LMWT), admmq wer. Usage: local/score.sh [--cmd CMD] DATA LANG DIR
set -euo pipefail
[ "$1" = --cmd ] && shift 2
data=$1; lang=$2; dir=$3
mkdir -p "$dir/scoring"
for lmwt in 8 9 10 11 12; do
  for f in "$dir"/lat.*.gz; do
    lattice-best-path --lm-scale="$lmwt" "ark:gunzip -c $f|" ark,t:- 2>/dev/null
  done | awk 'NR == FNR { w[$2] = $1; next } { s = $1; for (i = 2; i <= NF; i++) s = s " " w[$i]; print s }' \
    "$lang/words.txt" - > "$dir/scoring/$lmwt.txt"
  "${ADMMQ:-admmq}" wer "$data/text" "$dir/scoring/$lmwt.txt" > "$dir/wer_$lmwt"
done
grep -H total "$dir"/wer_* | sort -t'%' -k2 | head -1
EOF
chmod +x local/score.sh

out=exp/decode_test_admmq_nbest
if [ "$stage" -le 5 ]; then
  echo "== stage 5: the drop-in"
  ADMMQ="$admmq" bash "$ROOT/recipes/common/lmrescore_nbest_admmq.sh" \
    --cmd "$ROOT/recipes/common/run.pl --mem 4G" \
    --N 20 \
    --model-type LSTM \
    --embedding_dim 650 \
    --hidden_dim 650 \
    --nlayers 2 \
    --nhead 8 \
    --weight 0.8 \
    --admmq "$admmq" \
    data/lang_test "$lm" data/lang_test/words.txt \
    data/test exp/decode_test \
    $out
fi

if [ "$stage" -le 6 ]; then
  echo "== stage 6: the new lattices' best path at LMWT 10 against admmq rescore of the same archives"
  for j in $(seq "$nj"); do
    "$admmq" rescore "$out/archives.$j" --words-txt data/lang_test/words.txt --lm "$(ls "$out"/nnlm.admmq.pt 2>/dev/null || echo "$lm")" \
      --nn-weight 0.8 --lm-scale 10 --wip 0 --oov unk --carry-over kaldi --threads 1 --quiet -o "exp/admmq_rescore/$j" \
      > "log/admmq_rescore.$j.log" 2>&1
  done
  cat exp/admmq_rescore/*/text | sort > exp/admmq_rescore/text
  sort "$out/scoring/10.txt" > exp/admmq_rescore/lattices_lmwt10.txt
  if cmp -s exp/admmq_rescore/text exp/admmq_rescore/lattices_lmwt10.txt; then
    echo "same best hypothesis for all $(wc -l < exp/admmq_rescore/text) utterances:"
  else
    echo "$0: the lattices' best paths differ from admmq rescore's choice" >&2
    diff exp/admmq_rescore/text exp/admmq_rescore/lattices_lmwt10.txt | head >&2
    exit 1
  fi
  "$admmq" wer data/test/text exp/admmq_rescore/text
fi
