#!/usr/bin/env bash
# eval_row.sh NAME CHECKPOINT: test PPL (once), +4g PPL (EM weights on valid), ptb-tts WER alone and +4g
set -euo pipefail
name=$1; lm=$2; cd $STUDY; export OMP_NUM_THREADS=1 PATH=$STUDY/.venv/bin:$PATH PYTHONPATH=$CODE
o=evals/$name; mkdir -p $o; nb=$MAIN/data/ptb-tts; d=$o/nbest; mkdir -p $d
for s in dev test; do mkdir -p $d/$s; for f in $nb/$s/*; do n=$(basename $f); case $n in README.md) ;; *.gz) gzip -dc $f > $d/$s/${n%.gz};; *) cp $f $d/$s/$n;; esac; done; done
admmq eval --lm $lm --text data_ptb/ptb.test.txt --json --quiet > $o/test_eval.json
admmq interpolate --lm $lm --ngram lm/ptb.4g.arpa --valid data_ptb/ptb.valid.txt -o $o/weights.json --quiet > $o/interp.log 2>&1
admmq eval --weights $o/weights.json --text data_ptb/ptb.test.txt --json --quiet > $o/test_eval_4g.json
for v in alone 4g; do
  if [ $v = alone ]; then lmo="--lm $lm"; else lmo="--weights $o/weights.json"; fi
  admmq rescore $d/test $lmo --dev $d/dev --dev-ref $d/dev/text --ref $d/test/text --utt2subset $d/test/utt2subset -o $o/rescore_$v --quiet > $o/rescore_$v.log 2>&1
done
echo "$name done"
