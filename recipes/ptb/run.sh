#!/usr/bin/env bash
# PTB recipe: the ADMM paper's Table 1 (quantized LSTM LMs on the Penn Treebank), interpolation
# with a 4-gram, and WER from rescoring real 100-best lists (ptb-tts), in one run.
#
#   recipes/ptb/run.sh [--quick] [--stage N] [--stop-stage N] [options]
#
# Stages (each skips work whose .done marker exists; logs under $exp/log/):
#   1 data       PTB text (--ptb-dir, else the copy shipped in data/ptb, else --ptb-url) and the
#                ptb-tts dev/test n-best lists (--nbest-dir, else data/ptb-tts) into $data;
#                with --make-nbest true the n-best lists are made here instead, from PTB valid
#                (dev) and test (test) text: flite voices + pink noise + pocketsphinx
#                (admmq nbest synth; needs apt's flite and pip's pocketsphinx; about 4.6 s per
#                utterance and job: synthesis, a fresh decoder, decoding (1.5-1.7 s of it) and
#                the n-best costs (README); the defaults regenerate data/ptb-tts exactly)
#   2 4-gram     ARPA 4-gram from PTB train (recipes/common/make_4gram.sh: kenlm's lmplz, which
#                bin/setup-env builds into ~/.cache/admmq/kenlm, else irstlm: weaker, the line
#                printed says so), or --ngram FILE; its test perplexity
#   3 train      one LM per --rows entry (below), --nj at a time through $train_cmd
#   4 export     packed file per quantized row (admmq export --bits auto), sizes (admmq info),
#                test perplexity, EM-tuned interpolation with the 4-gram on valid
#   5 rescore    ptb-tts test: 4-gram alone, each LM alone and with the 4-gram; LM scale and
#                insertion penalty tuned on ptb-tts dev; WER per voice (subset) and total
#   6 report     figures (admmq plot; needs matplotlib) and $exp/RESULTS.md, printed
#
# Rows: std (fp), bin, binlin, admm_notie, admm_{node,layer}_{pm1,0pm1,pm12,pm124}.
# Full run (default): the paper's 11 rows (all but admm_notie) with the paper's epochs (STD 10,
# the others 50) on all of PTB;
# meant for a GPU (--device auto picks it). --quick: a CPU-sized subset (4 rows, a slice of PTB
# train, 3 epochs, ADMM rows started from the STD model) that runs in minutes on 2 cores.
#
# Options (defaults in brackets):
#   --quick                          CPU-sized demo [false]
#   --cpu-full                       CPU-sized full PTB: every quantized row (admm_node_pm124
#                                    admm_layer_0pm1 admm_layer_pm1 binlin) starts from a converged
#                                    STD (--std-model, else trained here) on all of PTB and runs a few
#                                    epochs (--epochs 5, --row-epochs), two rows at a time [false]
#   --std-model FILE                 use this trained fp checkpoint as the std row instead of training
#                                    it (copied with its logs into $exp/train/std) []
#   --row-epochs "row=N ..."         epochs of particular rows [cpu-full: "admm_layer_pm1=10 binlin=10"]
#   --rows "r1 r2 ..."               rows to train [the 11 above; quick: std binlin admm_layer_pm1 admm_node_pm124]
#   --epochs N                       epochs of every row [paper; quick: 3]
#   --max-sentences N                PTB train sentences used for the LSTMs [all; quick: 6000]
#   --nj N                           training / rescoring jobs at once [2]
#   --device DEV                     auto|cpu|cuda [auto]
#   --ptb-dir DIR                    ptb.{train,valid,test}.txt
#   --ptb-url URL                    where to download simple-examples.tgz when no PTB copy exists
#   --nbest-dir DIR                  ptb-tts-style dev/ and test/ n-best directories
#   --make-nbest true|false          make the dev/test n-best lists in stage 1 [false]
#   --synth-voices V1,V2             flite voices of --make-nbest, one subset each [slt,rms]
#   --synth-dev-text FILE            dev sentences are sampled from it [PTB valid]
#   --synth-test-text FILE           test sentences are sampled from it [PTB test]
#   --synth-sentences "NDEV NTEST"   sentences sampled per set [60 100]
#   --synth-limit N                  only the first N sampled sentences per set, 0 = all [0]
#   --ngram FILE                     use this ARPA instead of estimating one
#   --exp DIR  --data DIR            [recipes/ptb/exp (quick: exp_quick), recipes/ptb/data]
#   --extra-train-opts "..."         more admmq train options for every row
#   --admm-init std|none             the quantized rows (ADMM, bin, binlin) start from the trained STD
#                                    weights (admmq train --init-from: the ADMM settings for a trained
#                                    model, RESULTS_admm.md), or from scratch as in the paper
#                                    [none; quick, cpu-full: std]
set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
quick=false
cpu_full=false
std_model=""
row_epochs=""
rows=""
epochs=""
max_sentences=""
nj=2
device=auto
ptb_dir=""
ptb_url="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
nbest_dir=""
make_nbest=false
synth_voices=slt,rms
synth_dev_text=""
synth_test_text=""
synth_sentences="60 100"
synth_limit=0
ngram=""
exp=""
data="$RECIPE/data"
extra_train_opts=""
admm_init=""

. "$ROOT/recipes/common/parse_options.sh"
. "$RECIPE/cmd.sh"

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
if $quick; then
  : "${exp:=$RECIPE/exp_quick}"
  : "${rows:=std binlin admm_layer_pm1 admm_node_pm124}"
  : "${epochs:=3}"
  : "${max_sentences:=6000}"
  : "${admm_init:=std}"
elif $cpu_full; then
  : "${exp:=$RECIPE/exp_cpufull}"
  : "${rows:=std admm_node_pm124 admm_layer_0pm1 admm_layer_pm1 binlin}"
  : "${epochs:=5}"
  : "${row_epochs:=admm_layer_pm1=10 binlin=10}"
  : "${max_sentences:=0}"
  : "${admm_init:=std}"
else
  : "${exp:=$RECIPE/exp}"
  : "${rows:=std bin binlin admm_node_pm1 admm_node_0pm1 admm_node_pm12 admm_node_pm124 admm_layer_pm1 admm_layer_0pm1 admm_layer_pm12 admm_layer_pm124}"
  : "${max_sentences:=0}"
  : "${admm_init:=none}"
fi
mkdir -p "$exp/log" "$data"
ncpu=$(nproc 2>/dev/null || echo 1)
threads=$(( ncpu / nj )); [ "$threads" -ge 1 ] || threads=1

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
say() { echo "$(date '+%H:%M:%S') $*"; }

# row name -> admmq train options
row_opts() {
  case "$1" in
    std) echo "--method fp" ;;
    bin) echo "--method bin" ;;
    binlin) echo "--method bin-lin" ;;
    admm_notie) echo "--method admm --tying none" ;;
    admm_node_*|admm_layer_*)
      local rest="${1#admm_}"; echo "--method admm --tying ${rest%%_*} --qset ${rest#*_}" ;;
    *) echo "run.sh: unknown row '$1' (std bin binlin admm_notie admm_{node,layer}_{pm1,0pm1,pm12,pm124})" >&2
       return 1 ;;
  esac
}
for r in $rows; do row_opts "$r" >/dev/null; done

# run up to $nj background jobs; wait_jobs fails if any of them failed
pids=()
start_job() { "$@" & pids+=($!); if [ "${#pids[@]}" -ge "$nj" ]; then wait_jobs; fi; }
wait_jobs() { local rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; pids=(); return $rc; }

if run_stage 1; then
  say "stage 1: data"
  for s in train valid test; do
    if [ -n "$ptb_dir" ]; then
      cp "$ptb_dir/ptb.$s.txt" "$data/ptb.$s.txt"
    elif [ ! -s "$data/ptb.$s.txt" ]; then
      if [ -f "$ROOT/data/ptb/ptb.$s.txt.gz" ]; then
        gzip -dc "$ROOT/data/ptb/ptb.$s.txt.gz" > "$data/ptb.$s.txt"
      else
        [ -f "$data/simple-examples.tgz" ] || wget -q -O "$data/simple-examples.tgz" "$ptb_url"
        tar -xzf "$data/simple-examples.tgz" -C "$data" "./simple-examples/data/ptb.$s.txt"
        mv "$data/simple-examples/data/ptb.$s.txt" "$data/ptb.$s.txt"
      fi
    fi
  done
  if $make_nbest; then
    # the seeds and set letters of data/ptb-tts (dev: valid, seed 20251123; test: test, 20251124)
    read -r n_dev n_test <<< "$synth_sentences"
    for spec in "dev ${synth_dev_text:-$data/ptb.valid.txt} $n_dev 20251123 d" \
               "test ${synth_test_text:-$data/ptb.test.txt} $n_test 20251124 t"; do
      read -r s text n seed letter <<< "$spec"
      say "  making the $s n-best lists from $text ($n sentences x voices $synth_voices)"
      $decode_cmd "$exp/log/make_nbest_$s.log" \
        "$admmq" nbest synth --text "$text" -o "$data/nbest/$s" --voices "$synth_voices" --sentences "$n" \
          --seed "$seed" --letter "$letter" --limit "$synth_limit" --nj "$nj" --quiet
      grep " utterances (" "$exp/log/make_nbest_$s.log" || true
    done
  fi
  for s in dev test; do
    $make_nbest && break
    mkdir -p "$data/nbest/$s"
    src="${nbest_dir:-$ROOT/data/ptb-tts}/$s"
    for f in "$src"/*; do
      name="$(basename "$f")"
      case "$name" in
        README.md) ;;
        *.gz) gzip -dc "$f" > "$data/nbest/$s/${name%.gz}" ;;
        *) cp "$f" "$data/nbest/$s/$name" ;;
      esac
    done
  done
  wc -w "$data"/ptb.*.txt
fi

arpa="${ngram:-$exp/lm/ptb.4g.arpa}"
if run_stage 2; then
  say "stage 2: 4-gram"
  mkdir -p "$exp/lm"
  if [ ! -f "$exp/lm/.done" ]; then
    if [ -z "$ngram" ]; then
      "$ROOT/recipes/common/make_4gram.sh" "$data/ptb.train.txt" "$arpa" > "$exp/log/make_4gram.log" 2>&1 \
        || { cat "$exp/log/make_4gram.log"; exit 1; }
      sed -n 's/^make_4gram.sh: /  /p' "$exp/log/make_4gram.log"  # the tool used (and why, for irstlm)
    fi
    "$admmq" eval --ngram "$arpa" --text "$data/ptb.test.txt" --json > "$exp/lm/test_eval.json"
    touch "$exp/lm/.done"
  fi
  "$admmq" eval --ngram "$arpa" --text "$data/ptb.test.txt" --quiet 2>/dev/null | tail -n 1 || true
fi

if run_stage 3; then
  say "stage 3: train rows: $rows (${epochs:-paper} epochs, ${max_sentences} sentences (0 = all), nj $nj)"
  mkdir -p "$exp/train"
  # first the rows that start from scratch, then (--admm-init std) the ADMM rows from the STD model
  first=""; second=""
  for r in $rows; do
    case "$r" in std) first+=" $r" ;; *) if [ "$admm_init" = std ]; then second+=" $r"; else first+=" $r"; fi ;; esac
  done
  if [ -n "$std_model" ] && [ ! -f "$exp/train/std/.done" ]; then  # a given STD model is the std row
    mkdir -p "$exp/train/std"
    cp "$std_model" "$exp/train/std/best.pt"
    for f in train.log train_log.jsonl; do
      [ -f "$(dirname "$std_model")/$f" ] && cp "$(dirname "$std_model")/$f" "$exp/train/std/$f"
    done
    touch "$exp/train/std/.done"
    say "  std: the given model $std_model"
  fi
  if [ -n "$second" ] && [[ " $first " != *" std "* ]] && [ ! -f "$exp/train/std/.done" ]; then
    echo "run.sh: --admm-init std needs the std row (add it to --rows, or give --std-model)" >&2; exit 1
  fi
  for r in $first WAIT $second; do
    if [ "$r" = WAIT ]; then
      wait_jobs || { echo "run.sh: a training job failed; see $exp/log/train_*.log" >&2; exit 1; }
      continue
    fi
    [ -f "$exp/train/$r/.done" ] && continue
    opts="$(row_opts "$r")"
    if [ "$r" != std ] && [ "$admm_init" = std ]; then opts+=" --init-from $exp/train/std/best.pt"; fi
    ep=""; [ -n "$epochs" ] && ep="--epochs $epochs"
    for re in $row_epochs; do [ "${re%%=*}" = "$r" ] && ep="--epochs ${re#*=}"; done
    if [ -f "$exp/train/$r/last.pt" ]; then  # killed earlier: continue exactly where it stopped
      args="--resume $exp/train/$r $ep"
    else
      args="--train $data/ptb.train.txt --valid $data/ptb.valid.txt -o $exp/train/$r $opts $ep \
            --max-sentences $max_sentences --device $device $extra_train_opts"
    fi
    say "  train $r: admmq train $(echo $args)"
    start_job $train_cmd "$exp/log/train_$r.log" \
      OMP_NUM_THREADS=$threads "$admmq" train $args --quiet "&&" touch "$exp/train/$r/.done"
  done
  wait_jobs || { echo "run.sh: a training job failed; see $exp/log/train_*.log" >&2; exit 1; }
  for r in $rows; do say "  $r: $(grep ' epoch [0-9]*: ' "$exp/train/$r/train.log" | tail -n 1 | cut -c21-)"; done
fi

lm_of() { if [ "$1" = std ] || [ ! -f "$exp/export/$1.admmq" ]; then echo "$exp/train/$1"; else echo "$exp/export/$1.admmq"; fi; }

if run_stage 4; then
  say "stage 4: export, size, test perplexity, interpolation with the 4-gram"
  mkdir -p "$exp/export" "$exp/interp"
  for r in $rows; do
    [ -f "$exp/export/$r.done" ] && continue
    if [ "$r" = std ] || [ "$r" = admm_notie ]; then
      "$admmq" info --json --lm "$exp/train/$r" > "$exp/export/$r.info.json"
    else
      "$admmq" export --lm "$exp/train/$r" --bits auto -o "$exp/export/$r.admmq" --quiet > "$exp/log/export_$r.log" 2>&1 \
        || { cat "$exp/log/export_$r.log"; exit 1; }
      "$admmq" info --json --lm "$exp/export/$r.admmq" > "$exp/export/$r.info.json"
    fi
    lm="$(lm_of "$r")"
    "$admmq" eval --lm "$lm" --text "$data/ptb.test.txt" --json --quiet > "$exp/train/$r/test_eval.json"
    mkdir -p "$exp/interp/$r"
    "$admmq" interpolate --lm "$lm" --ngram "$arpa" --valid "$data/ptb.valid.txt" \
      -o "$exp/interp/$r/weights.json" --quiet > "$exp/log/interpolate_$r.log" 2>&1 \
      || { cat "$exp/log/interpolate_$r.log"; exit 1; }
    "$admmq" eval --weights "$exp/interp/$r/weights.json" --text "$data/ptb.test.txt" --json --quiet \
      > "$exp/interp/$r/test_eval.json"
    touch "$exp/export/$r.done"
  done
  "$admmq" report "$exp" | sed -n '/^| model /,/^$/p'
fi

nb="$data/nbest"
rescore_one() {  # name, then the LM options
  local name="$1"; shift
  [ -f "$exp/rescore/$name/.done" ] && return 0
  $decode_cmd "$exp/log/rescore_$name.log" \
    OMP_NUM_THREADS=$threads "$admmq" rescore "$nb/test" "$@" --dev "$nb/dev" --dev-ref "$nb/dev/text" \
      --ref "$nb/test/text" --utt2subset "$nb/test/utt2subset" -o "$exp/rescore/$name" --quiet \
      "&&" touch "$exp/rescore/$name/.done"
}

if run_stage 5; then
  say "stage 5: rescore ptb-tts test (tuned on dev)"
  mkdir -p "$exp/rescore"
  start_job rescore_one 4gram --ngram "$arpa"
  for r in $rows; do
    lm="$(lm_of "$r")"
    start_job rescore_one "$r" --lm "$lm"
    start_job rescore_one "$r+4gram" --weights "$exp/interp/$r/weights.json"
  done
  wait_jobs || { echo "run.sh: a rescoring job failed; see $exp/log/rescore_*.log" >&2; exit 1; }
fi

if run_stage 6; then
  say "stage 6: report"
  # admmq plot needs matplotlib (admmq[plot]); without it each command is a one-line error in plots.log
  mkdir -p "$exp/plots"
  runs=(); for r in $rows; do runs+=("$exp/train/$r"); done
  "$admmq" plot curves "${runs[@]}" -o "$exp/plots/curves.png" > "$exp/log/plots.log" 2>&1 || true
  "$admmq" plot front "${runs[@]}" --paper -o "$exp/plots/front.png" >> "$exp/log/plots.log" 2>&1 || true
  best="$(for r in $rows; do echo "$r"; done | tail -n 1)"
  [ -d "$exp/rescore/$best+4gram" ] && \
    { "$admmq" plot sweep "$exp/rescore/$best+4gram" -o "$exp/plots/sweep.png" >> "$exp/log/plots.log" 2>&1 || true; }
  [ -f "$exp/plots/curves.png" ] || say "  figures skipped: $(tail -n 1 "$exp/log/plots.log")"
  if $quick; then
    note="\`recipes/ptb/run.sh --quick\`: rows trained on the first $max_sentences sentences of PTB train for $epochs epochs, quantized rows started from the STD row's weights (CPU-sized demo; the paper trains on all of PTB for 10-50 epochs), 4-gram on all of PTB train."
  elif $cpu_full; then
    note="\`recipes/ptb/run.sh --cpu-full\`: quantized rows started from a converged STD on all of PTB train, $epochs epochs (${row_epochs:-no row exceptions}); the paper trains from scratch for 50 epochs."
  else
    what="all of PTB train"; [ "$max_sentences" = 0 ] || what="the first $max_sentences sentences of PTB train"
    ep_text="the paper's"; [ -z "$epochs" ] || ep_text="$epochs"
    note="\`recipes/ptb/run.sh\`: rows trained on $what for $ep_text epochs."
  fi
  "$admmq" report "$exp" -o "$exp/RESULTS.md" --title "PTB results" --note "$note"
  say "done: $exp/RESULTS.md"
fi
