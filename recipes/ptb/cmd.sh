# Job runners, as in Kaldi's cmd.sh. run.pl runs jobs on this machine; for a grid, point these at
# Kaldi's queue.pl or slurm.pl (same calling convention: $cmd [JOB=1:n] LOG COMMAND...).
export train_cmd="$ROOT/recipes/common/run.pl"
export decode_cmd="$ROOT/recipes/common/run.pl"
