#!/usr/bin/env bash
# ADMM convergence study (recipes/ptb/RESULTS_admm.md): quantize a trained full-precision PTB LSTM
# with several ADMM schedules for a few epochs on a slice of PTB and compare the quantized model's
# validation perplexity per epoch.
#
#   recipes/ptb/run_admm_study.sh --std STD_CHECKPOINT [--settings "A B ..."] [--epochs N]
#                                 [--train-sentences N] [--valid-sentences N] [--nj N] [--exp DIR]
#
# Stages: 1 data slices; 2 one `admmq train --init-from STD` per setting, --nj at a time; 3 table of
# quantized validation perplexity per epoch (from each run's train.log) and curves (admmq plot).
# Settings (layer-tied {±1} unless the name says otherwise):
#   A_paper      the paper: one ADMM iteration per epoch, γ 3e-3, lr 1 (admmq's --admm-interval epoch)
#   B_i100       eqs. 18-21 every 100 mini-batches
#   E_i100_lr01_g03  every 100, lr 0.1, γ 0.03
#   G_qla_i100   every 100, cross-entropy gradient taken at Q (--extragradient quantized)
#   J_warm_i100  every 100, Θ moved with the penalty's centre after each iteration (--warm-start)
#   L_i200_g03   every 200, γ 0.03 (Θ-subproblem relaxed: lr·γ·N = 6)
#   M_warm_i100_g1e-3, O_warm_i100_g3e-4   J with γ 1e-3, 3e-4
#   N_warm_i20   J every 20 mini-batches
#   I_binlin_std Bin+Lin (straight-through binarization with partially quantized linear layers)
#   P_node_pm124_trained, Q_layer_0pm1_trained   node {±1,±2,±4} and layer {0,±1} with the
#                `trained` schedule as it was then (Θ moved with the centre), 3 epochs;
#                P2_node_pm124_lr025, M2_warm_g1e-3_lr025: P and M at lr 0.25
#   (all of the above without dropout, as measured for RESULTS_admm.md §1)
# Section 4 of RESULTS_admm.md (one epoch on 20,000 sentences, all of PTB valid:
#   --train-sentences 20000 --valid-sentences 0 --epochs 1), every 100 mini-batches, γ 1e-3, constant lr:
#   R_node_centre_lr002           node {±1,±2,±4}, Θ moved with the centre (the drift), lr 0.02
#   S_node_q_lr002, S_node_q_lr005  Θ ← Q after each iteration (--warm-start quantized), lr 0.02 / 0.05
#   U_node_q_lr005_i10            S at lr 0.05, every 10 mini-batches
#   T_node_q_lr005_d03, T_node_q_lr025_d03, T_node_q_lr01_d05   with dropout 0.3 / 0.3 / 0.5
#   V_l0_q_lr025, V_l0_q_lr1, V_l0_q_lr025_i20, V_l0_q_lr025_d03   layer {0,±1}
#   W_l1_q_lr025, W_l1_q_lr025_d03   layer {±1}
#   (SGD and every 100 mini-batches pinned: the `trained` schedule of then)
# Section 6 (the `trained-adam` schedule: Adam, every 50 mini-batches, γ 1e-3, Θ ← Q):
#   on all of PTB (--train-sentences 20000 --valid-sentences 0 --epochs 1):
#   X_l1_adam_lr5e3 (the default then), X_l1_adam_lr2e3   layer {±1}, Adam at lr 5e-3 / 2e-3
#   on the demo's slice from the demo's STD (--std recipes/ptb/exp_quick/train/std/best.pt
#   --train-sentences 6000 --valid-sentences 0 --epochs 3), layer {±1} unless named:
#   Y_l1_sgd_i100                 the §4 default: SGD at the STD's rate (1), every 100
#   Y_l1_adam_lr3e4_i100, Y_l1_adam_lr1e3_i100, Y_l1_adam_lr3e3_i100, Y_l1_adam_lr1e2_i100   Adam, every 100
#   Y_l1_adam_lr3e3_i100_d05      dropout 0.5;  Y_l1_adam_lr1e2_i20   every 20 mini-batches
#   Y_l1_adam_lr5e3_i50 (the default then), Y_node_adam_lr5e3_i50   layer {±1}, node {±1,±2,±4}
#   (γ pinned at 1e-3, fixed: the `trained-adam` schedule of then; section 7 added the γ warm-up)
# Section 7 (γ growing per ADMM iteration to 1e-2 under `trained-adam`), on all of PTB
#   (--train-sentences 0 --valid-sentences 0 --epochs 10):
#   Z_l1_g1e3_x105, Z_l1_g1e3_x102, Z_l1_g1e3_x1005   γ from 1e-3, ×1.05 / ×1.02 / ×1.005 per iteration
#   Z_l1_g5e4_x10075              γ from 5e-4, ×1.0075 (the default of §7)
# Section 8 (the cap of that γ; all of PTB, 10 epochs as in section 7):
#   Z_l1_g5e4_x10075_cap3e3, Z_l1_g5e4_x10075_cap5e3, Z_l1_g5e4_x10075_cap3e2   γ from 5e-4, ×1.0075,
#                                 capped at 3e-3 / 5e-3 / 3e-2 instead of 1e-2 (3e-2: the default of §8)
#   Z_l1_g5e4_x10075_mi003        §7's default with the rate halved only when an epoch gains under 0.3 %
#                                 (Bin+Lin's rule) instead of 1 %
# Section 9 (§8's default, cap 3e-2, with one change; all of PTB, 10 epochs):
#   Z_l1_g5e4_x10075_cap3e2_d0, Z_l1_g5e4_x10075_cap3e2_d05   dropout 0 / 0.5 instead of --init-from's 0.3
#   Z_l1_g5e4_x10075_cap1e1       γ capped at 1e-1 (the default of §9)
# Section 10 (§9's default with a second γ warm-up; all of PTB, 10 epochs):
#   Z_l1_g5e4_x10075_cap1e1_r510  γ from 5e-4 again after 510 ADMM iterations (6 epochs), ×1.02 from then
#                                 on, to 1e-1 (the default now; sections 6-9 pin --gamma-restart-after 0)
# Every setting gives its learning rate (lr 1 unless named): --init-from's own default is the STD's
# finishing rate (0.25 for the shared STD).
# RESULTS_admm.md: --std ../shared/models/ptb-std-1x200/best.pt (converged on all of PTB), the defaults.
set -euo pipefail
RECIPE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$RECIPE/../.." && pwd)"

stage=1
stop_stage=100
std=""
settings="A_paper B_i100 E_i100_lr01_g03 G_qla_i100 J_warm_i100 L_i200_g03 M_warm_i100_g1e-3 O_warm_i100_g3e-4 N_warm_i20 I_binlin_std P_node_pm124_trained Q_layer_0pm1_trained P2_node_pm124_lr025 M2_warm_g1e-3_lr025"
epochs=4
train_sentences=6000
valid_sentences=1000
nj=2
exp="$RECIPE/exp_admm_study"
data="$RECIPE/data"

. "$ROOT/recipes/common/parse_options.sh"
. "$RECIPE/cmd.sh"
[ -n "$std" ] || { echo "run_admm_study.sh: --std CHECKPOINT (a trained fp PTB LM) is required" >&2; exit 1; }

admmq=admmq
command -v admmq >/dev/null 2>&1 || admmq="$ROOT/bin/admmq"
mkdir -p "$exp/log" "$data"
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

setting_opts() {
  local Q="--method admm --qset pm1 --tying layer --admm-schedule paper --lr 1 --dropout 0"  # the paper's γ, per epoch, lr 1
  local T="--method admm --admm-schedule trained --schedule constant --warm-start quantized --optimizer sgd --admm-interval 100"  # section 4
  # sections 6-10 ran before the schedules were stated per epoch: every 50 mini-batches, γ per ADMM iteration
  local X="--method admm --admm-schedule trained-adam --qset pm1 --tying layer --admm-interval 50 --gamma 1e-3 --gamma-growth 1 --gamma-max 0 --gamma-restart-after 0"  # section 6 (γ fixed then)
  local Z="--method admm --admm-schedule trained-adam --qset pm1 --tying layer --admm-interval 50"  # sections 7-10 (each names its cap)
  local Z5="$Z --gamma 5e-4 --gamma-growth 1.0075"  # §7's warm-up, the base of sections 8-10
  case "$1" in
    A_paper) echo "$Q" ;;
    B_i100) echo "$Q --admm-interval 100" ;;
    E_i100_lr01_g03) echo "$Q --admm-interval 100 --lr 0.1 --gamma 0.03" ;;
    G_qla_i100) echo "$Q --admm-interval 100 --extragradient quantized" ;;
    J_warm_i100) echo "$Q --admm-interval 100 --warm-start centre" ;;
    L_i200_g03) echo "$Q --admm-interval 200 --gamma 0.03" ;;
    M_warm_i100_g1e-3) echo "$Q --admm-interval 100 --warm-start centre --gamma 1e-3" ;;
    O_warm_i100_g3e-4) echo "$Q --admm-interval 100 --warm-start centre --gamma 3e-4" ;;
    N_warm_i20) echo "$Q --admm-interval 20 --warm-start centre" ;;
    I_binlin_std) echo "--method bin-lin --lr 1 --dropout 0" ;;
    P_node_pm124_trained) echo "--method admm --qset pm124 --tying node --admm-schedule trained --warm-start centre --dropout 0 --lr 1 --epochs 3 --optimizer sgd --admm-interval 100" ;;
    Q_layer_0pm1_trained) echo "--method admm --qset 0pm1 --tying layer --admm-schedule trained --warm-start centre --dropout 0 --lr 1 --epochs 3 --optimizer sgd --admm-interval 100" ;;
    P2_node_pm124_lr025) echo "--method admm --qset pm124 --tying node --admm-schedule trained --warm-start centre --dropout 0 --lr 0.25 --epochs 3 --optimizer sgd --admm-interval 100" ;;
    R_node_centre_lr002) echo "$T --qset pm124 --tying node --warm-start centre --dropout 0 --lr 0.02" ;;
    S_node_q_lr002) echo "$T --qset pm124 --tying node --dropout 0 --lr 0.02" ;;
    S_node_q_lr005) echo "$T --qset pm124 --tying node --dropout 0 --lr 0.05" ;;
    U_node_q_lr005_i10) echo "$T --qset pm124 --tying node --dropout 0 --lr 0.05 --admm-interval 10" ;;
    T_node_q_lr005_d03) echo "$T --qset pm124 --tying node --dropout 0.3 --lr 0.05" ;;
    T_node_q_lr025_d03) echo "$T --qset pm124 --tying node --dropout 0.3 --lr 0.25" ;;
    T_node_q_lr01_d05) echo "$T --qset pm124 --tying node --dropout 0.5 --lr 0.1" ;;
    V_l0_q_lr025) echo "$T --qset 0pm1 --tying layer --dropout 0 --lr 0.25" ;;
    V_l0_q_lr1) echo "$T --qset 0pm1 --tying layer --dropout 0 --lr 1" ;;
    V_l0_q_lr025_i20) echo "$T --qset 0pm1 --tying layer --dropout 0 --lr 0.25 --admm-interval 20" ;;
    V_l0_q_lr025_d03) echo "$T --qset 0pm1 --tying layer --dropout 0.3 --lr 0.25" ;;
    W_l1_q_lr025) echo "$T --qset pm1 --tying layer --dropout 0 --lr 0.25" ;;
    W_l1_q_lr025_d03) echo "$T --qset pm1 --tying layer --dropout 0.3 --lr 0.25" ;;
    X_l1_adam_lr5e3) echo "$X --schedule constant" ;;
    X_l1_adam_lr2e3) echo "$X --schedule constant --lr 0.002" ;;
    Y_l1_sgd_i100) echo "$X --optimizer sgd --admm-interval 100" ;;
    Y_l1_adam_lr3e4_i100) echo "$X --lr 0.0003 --admm-interval 100" ;;
    Y_l1_adam_lr1e3_i100) echo "$X --lr 0.001 --admm-interval 100" ;;
    Y_l1_adam_lr3e3_i100) echo "$X --lr 0.003 --admm-interval 100" ;;
    Y_l1_adam_lr1e2_i100) echo "$X --lr 0.01 --admm-interval 100" ;;
    Y_l1_adam_lr3e3_i100_d05) echo "$X --lr 0.003 --admm-interval 100 --dropout 0.5" ;;
    Y_l1_adam_lr1e2_i20) echo "$X --lr 0.01 --admm-interval 20" ;;
    Y_l1_adam_lr5e3_i50) echo "$X" ;;
    Y_node_adam_lr5e3_i50) echo "--method admm --admm-schedule trained-adam --qset pm124 --tying node --admm-interval 50 --gamma 1e-3 --gamma-growth 1 --gamma-max 0 --gamma-restart-after 0" ;;
    Z_l1_g1e3_x105) echo "$Z --gamma 1e-3 --gamma-growth 1.05 --gamma-max 0.01 --gamma-restart-after 0" ;;
    Z_l1_g1e3_x102) echo "$Z --gamma 1e-3 --gamma-growth 1.02 --gamma-max 0.01 --gamma-restart-after 0" ;;
    Z_l1_g1e3_x1005) echo "$Z --gamma 1e-3 --gamma-growth 1.005 --gamma-max 0.01 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075) echo "$Z5 --gamma-max 0.01 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap3e3) echo "$Z5 --gamma-max 0.003 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap5e3) echo "$Z5 --gamma-max 0.005 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap3e2) echo "$Z5 --gamma-max 0.03 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_mi003) echo "$Z5 --min-improvement 0.003 --gamma-max 0.01 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap3e2_d0) echo "$Z5 --gamma-max 0.03 --dropout 0 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap3e2_d05) echo "$Z5 --gamma-max 0.03 --dropout 0.5 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap1e1) echo "$Z5 --gamma-max 0.1 --gamma-restart-after 0" ;;
    Z_l1_g5e4_x10075_cap1e1_r510) echo "$Z5 --gamma-max 0.1 --gamma-restart-after 510 --gamma-restart-growth 1.02" ;;
    M2_warm_g1e-3_lr025) echo "$Q --admm-interval 100 --warm-start centre --gamma 1e-3 --lr 0.25 --epochs 3" ;;
    *) echo "run_admm_study.sh: unknown setting '$1'" >&2; return 1 ;;
  esac
}
for s in $settings; do setting_opts "$s" >/dev/null; done

if run_stage 1; then
  for s in train valid; do
    [ -s "$data/ptb.$s.txt" ] || gzip -dc "$ROOT/data/ptb/ptb.$s.txt.gz" > "$data/ptb.$s.txt"
  done
  for s in train valid; do  # the first N sentences (0: all)
    n=$train_sentences; [ $s = train ] || n=$valid_sentences
    if [ "$n" -gt 0 ]; then head -n "$n" "$data/ptb.$s.txt" > "$exp/$s.txt"; else cp "$data/ptb.$s.txt" "$exp/$s.txt"; fi
  done
  $admmq eval --lm "$std" --text "$exp/valid.txt" --json > "$exp/std_valid.json"
fi

if run_stage 2; then
  pids=()
  for s in $settings; do
    [ -f "$exp/$s/.done" ] && continue
    if [ -f "$exp/$s/last.pt" ]; then args="--resume $exp/$s"; else
      args="--init-from $std --train $exp/train.txt --valid $exp/valid.txt -o $exp/$s --epochs $epochs $(setting_opts "$s")"
    fi
    echo "train $s: admmq train $args"
    $train_cmd "$exp/log/$s.log" OMP_NUM_THREADS=1 "$admmq" train $args --quiet "&&" touch "$exp/$s/.done" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$nj" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
fi

if run_stage 3; then
  echo "STD on the validation slice: $(grep -o '"ppl": [0-9.]*' "$exp/std_valid.json")"
  for s in $settings; do
    [ -f "$exp/$s/train.log" ] || continue
    printf '%-22s' "$s"
    grep ' epoch [0-9]*: ' "$exp/$s/train.log" | sed -E 's/.* epoch ([0-9]+):.*quantized ([0-9.e+]+)\).*/ \1:\2/' | tr -d '\n'
    echo
  done
  if $admmq plot curves $(for s in $settings; do [ -f "$exp/$s/train_log.jsonl" ] && echo "$exp/$s"; done) \
       -o "$exp/curves.png" 2>"$exp/log/plot.log"; then echo "curves: $exp/curves.png"; else
    echo "no curves: $(tail -n 1 "$exp/log/plot.log")"; fi
fi
