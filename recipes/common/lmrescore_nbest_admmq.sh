#!/usr/bin/env bash
# admmq's drop-in for Kaldi's steps/pytorchnn/lmrescore_nbest_pytorchnn.sh: N-best rescoring of a
# decode directory's lattices with an LSTM LM, the new lattices in <output-decode-dir>/lat.JOB.gz.
#
#   lmrescore_nbest_admmq.sh [options] <old-lang-dir> <nn-model> <vocab> <data-dir> <input-decode-dir> <output-decode-dir>
#
# Same arguments, options, stages and outputs as Kaldi's script (run from a Kaldi recipe directory,
# e.g. egs/swbd/s5c, with its path.sh putting Kaldi's programs on PATH): lattice-to-nbest; the old LM
# removed (G.carpa: lattice-lmrescore-const-arpa --lm-scale=-1; G.fst: lattice-compose with
# fstproject's output, lattice-1best); nbest-to-linear into $dir/archives.JOB/{ali,words,lmwt.nolm,
# acwt,lmwt.withlm}; words_text and lmwt.lmonly; then, where Kaldi runs compute_sentence_scores.py, one
# `admmq rescore` per job ($cmd JOB=1:nj) writing lmwt.nn.sum and lmwt.interp.$weight =
# nolm + weight*nn + (1-weight)*lmonly (Kaldi's log-linear combination, admmq rescore --nn-weight);
# linear-to-nbest | nbest-to-lattice; local/score.sh unless --skip-scoring true.
#
# <nn-model>: an admmq LM (checkpoint, packed file) or the PyTorch RNNModel state dict steps/pytorchnn
# trained (imported once into $dir/nnlm.admmq.pt with <vocab>, admmq import --sent-boundary).
# <vocab>: the model's vocabulary (Kaldi: a words.txt), used when importing.
# Kaldi's model options (--model-type, --embedding-dim, --hidden-dim, --nlayers, --nhead) are accepted;
# admmq reads the model's shape from the model itself (LSTM models only).
#
# admmq's options: --carry-over kaldi|recording|none (default kaldi: compute_sentence_scores.py's state
# carry-over, one chain per job; recording: per recording of <data-dir>/segments in start-time order, else
# per speaker of <data-dir>/utt2spk), --sent-boundary (for importing), --admmq-opts "..." (more
# `admmq rescore` options, after the script's own: e.g. "--oov share --int8"), --admmq CMD.
# Out-of-vocabulary words get the unknown word's whole probability (--oov unk), as Kaldi's --oov <unk>.
set -euo pipefail

# Kaldi's options (same names and defaults, except model_type: admmq scores LSTMs)
N=10
model_type=LSTM
embedding_dim=768
hidden_dim=768
nlayers=6
nhead=8
inv_acwt=10
weight=0.8          # weight of the neural LM's cost, 1 - weight the old LM's
oov_symbol="'<unk>'"
cmd=run.pl
use_phi=false
test=false
stage=1
skip_scoring=false
keep_ali=true
# admmq's own
carry_over=kaldi
sent_boundary=""
admmq_opts=""
admmq=""

echo "$0 $*"
[ -f ./path.sh ] && . ./path.sh
_po_also="N"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

if [ $# != 6 ]; then
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
oldlang=$1
nn_model=$2
vocab=$3
data=$4
indir=$5
dir=$6

if [ -z "$admmq" ]; then
  admmq=admmq
  command -v admmq >/dev/null 2>&1 || admmq="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/admmq"
fi
[ "$model_type" = LSTM ] || { echo "$0: --model-type $model_type: admmq rescores with LSTM models only" >&2; exit 1; }
case "$carry_over" in kaldi|none) carry_opts="--carry-over $carry_over";;
  recording)
    if [ -f "$data/segments" ]; then carry_opts="--carry-over recording --segments $data/segments"
    elif [ -f "$data/utt2spk" ]; then carry_opts="--carry-over recording --utt2spk $data/utt2spk"
    else echo "$0: --carry-over recording needs $data/segments or $data/utt2spk" >&2; exit 1; fi;;
  *) echo "$0: --carry-over must be kaldi, recording or none" >&2; exit 1;;
esac

acwt=$(perl -e "print (1.0/$inv_acwt);")

# the old LM: G.carpa or G.fst
oldlm=$oldlang/G.fst
if [ -f "$oldlang/G.carpa" ]; then
  oldlm=$oldlang/G.carpa
elif [ ! -f "$oldlm" ]; then
  echo "$0: expecting either $oldlang/G.fst or $oldlang/G.carpa to exist" >&2
  exit 1
fi
for f in "$nn_model" "$vocab" "$indir/lat.1.gz" "$oldlang/words.txt"; do
  [ -f "$f" ] || { echo "$0: expected file $f to exist." >&2; exit 1; }
done

nj=$(cat "$indir/num_jobs")
mkdir -p "$dir/log"
cp "$indir/num_jobs" "$dir/num_jobs"
adir=$dir/archives
phi=$(grep -w '#0' "$oldlang/words.txt" | awk '{print $2}')

# the LM: an admmq file as it is, a PyTorch state dict imported once
lm=$nn_model
if ! "$admmq" info --lm "$nn_model" >/dev/null 2>&1; then
  lm=$dir/nnlm.admmq.pt
  if [ ! -f "$lm" ] || [ "$nn_model" -nt "$lm" ] || [ "$vocab" -nt "$lm" ]; then
    echo "$0: $nn_model is not an admmq LM: importing it as a PyTorch RNNModel state dict"
    "$admmq" import "$nn_model" --vocab "$vocab" -o "$lm" ${sent_boundary:+--sent-boundary "$sent_boundary"} \
      --quiet > "$dir/log/import.log" 2>&1 || { cat "$dir/log/import.log" >&2; exit 1; }
  fi
fi

if [ "$stage" -le 1 ]; then
  echo "$0: converting lattices to N-best lists."
  if $keep_ali; then
    $cmd JOB=1:$nj "$dir/log/lat2nbest.JOB.log" \
      lattice-to-nbest --acoustic-scale=$acwt --n=$N \
      "ark:gunzip -c $indir/lat.JOB.gz|" "ark:|gzip -c >$dir/nbest1.JOB.gz"
  else
    $cmd JOB=1:$nj "$dir/log/lat2nbest.JOB.log" \
      lattice-to-nbest --acoustic-scale=$acwt --n=$N "ark:gunzip -c $indir/lat.JOB.gz|" ark:- \| \
      lattice-rmali ark:- "ark:|gzip -c >$dir/nbest1.JOB.gz"
  fi
fi

if [ "$stage" -le 2 ]; then
  echo "$0: removing old LM scores."
  if [ "$oldlm" = "$oldlang/G.fst" ]; then
    if $use_phi; then  # the old LM was added with phi (failure) composition, e.g. by lmrescore.sh
      $cmd JOB=1:$nj "$dir/log/remove_old.JOB.log" \
        lattice-scale --acoustic-scale=-1 --lm-scale=-1 "ark:gunzip -c $dir/nbest1.JOB.gz|" ark:- \| \
        lattice-compose --phi-label=$phi ark:- "$oldlm" ark:- \| \
        lattice-scale --acoustic-scale=-1 --lm-scale=-1 ark:- "ark:|gzip -c >$dir/nbest2.JOB.gz"
    else  # the best path through the old LM, its cost subtracted (lattices straight from decoding)
      # Kaldi's script says --project_output=true, which OpenFst >= 1.7.7's fstproject (Debian's 1.7.9) refuses
      project="--project_output=true"
      case "$(fstproject --help 2>&1 || true)" in *--project_type*) project="--project_type=output";; esac
      $cmd JOB=1:$nj "$dir/log/remove_old.JOB.log" \
        lattice-scale --acoustic-scale=-1 --lm-scale=-1 "ark:gunzip -c $dir/nbest1.JOB.gz|" ark:- \| \
        lattice-compose ark:- "fstproject $project $oldlm |" ark:- \| \
        lattice-1best ark:- ark:- \| \
        lattice-scale --acoustic-scale=-1 --lm-scale=-1 ark:- "ark:|gzip -c >$dir/nbest2.JOB.gz"
    fi
  else
    $cmd JOB=1:$nj "$dir/log/remove_old.JOB.log" \
      lattice-lmrescore-const-arpa --lm-scale=-1.0 "ark:gunzip -c $dir/nbest1.JOB.gz|" "$oldlm" \
      "ark:|gzip -c >$dir/nbest2.JOB.gz"
  fi
fi

if [ "$stage" -le 3 ]; then
  echo "$0: creating separate-archive form of N-best lists."
  $cmd JOB=1:$nj "$dir/log/make_new_archives.JOB.log" \
    mkdir -p $adir.JOB '&&' \
    nbest-to-linear "ark:gunzip -c $dir/nbest2.JOB.gz|" \
    "ark,t:$adir.JOB/ali" "ark,t:$adir.JOB/words" "ark,t:$adir.JOB/lmwt.nolm" "ark,t:$adir.JOB/acwt"
fi

if [ "$stage" -le 4 ]; then
  echo "$0: doing the same with old LM scores."
  $cmd JOB=1:$nj "$dir/log/make_old_archives.JOB.log" \
    nbest-to-linear "ark:gunzip -c $dir/nbest1.JOB.gz|" "ark:/dev/null" \
    "ark:/dev/null" "ark,t:$adir.JOB/lmwt.withlm" "ark:/dev/null"
fi

if $test; then  # at the N-best acoustic scale, the same WER as the input lattices
  echo "$0 [testing branch]: generating lattices without changing scores."
  $cmd JOB=1:$nj "$dir/log/test.JOB.log" \
    linear-to-nbest "ark:$adir.JOB/ali" "ark:$adir.JOB/words" "ark:$adir.JOB/lmwt.withlm" \
    "ark:$adir.JOB/acwt" ark:- \| \
    nbest-to-lattice ark:- "ark:|gzip -c >$dir/lat.JOB.gz"
  exit 0
fi

if [ "$stage" -le 5 ]; then
  echo "$0: creating archives with text-form of words, and LM scores without graph scores."
  for n in $(seq "$nj"); do
    awk 'NR == FNR { sym[$2] = $1; next }
         { line = $1; for (i = 2; i <= NF; i++) { if (!($i in sym)) { print "no word " $i " in words.txt" > "/dev/stderr"; exit 1 }
                                                  line = line " " sym[$i] }
           print line }' "$oldlang/words.txt" "$adir.$n/words" > "$adir.$n/words_text"
    paste "$adir.$n/lmwt.nolm" "$adir.$n/lmwt.withlm" | awk '{print $1, ($4-$2);}' > "$adir.$n/lmwt.lmonly"
  done
fi

if [ "$stage" -le 6 ]; then
  echo "$0: computing LSTM LM scores of the N-best lists with admmq rescore, one job per lattice archive."
  # lmwt.new of --lm-scale 1 --wip 0 = lmwt.nolm + weight*nn + (1-weight)*lmwt.lmonly
  $cmd JOB=1:$nj "$dir/log/admmq_rescore.JOB.log" \
    "$admmq" rescore $adir.JOB --words-txt "$oldlang/words.txt" --lm "$lm" --nn-weight $weight \
      --lm-scale 1 --wip 0 --oov unk $carry_opts --threads 1 --quiet -o $adir.JOB/admmq $admmq_opts
fi

if [ "$stage" -le 7 ]; then
  echo "$0: reconstructing total LM+graph scores including interpolation of neural LM and old LM scores."
  for n in $(seq "$nj"); do
    awk 'NR == 1 { for (i = 4; i <= NF; i++) if ($i == "lm.new") col = i - 2; next } { print $1, $col }' \
      "$adir.$n/admmq/nbest.txt" > "$adir.$n/lmwt.nn.sum"
    cp "$adir.$n/admmq/lmwt.new" "$adir.$n/lmwt.interp.$weight"  # (Kaldi's is named lmwt.interp.: no $nnweight)
  done
fi

if [ "$stage" -le 8 ]; then
  echo "$0: reconstructing archives back into lattices."
  $cmd JOB=1:$nj "$dir/log/reconstruct_lattice.JOB.log" \
    linear-to-nbest "ark:$adir.JOB/ali" "ark:$adir.JOB/words" \
    "ark:$adir.JOB/lmwt.interp.$weight" "ark:$adir.JOB/acwt" ark:- \| \
    nbest-to-lattice ark:- "ark:|gzip -c >$dir/lat.JOB.gz"
fi

if ! $skip_scoring; then
  echo "scoring..."
  [ -x local/score.sh ] || { echo "Not scoring because local/score.sh does not exist or not executable." >&2; exit 1; }
  local/score.sh --cmd "$cmd" "$data" "$oldlang" "$dir" ||
    { echo "$0: Scoring failed. (ignore by '--skip-scoring true')" >&2; exit 1; }
fi
exit 0
