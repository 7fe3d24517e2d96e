# Job commands of the swbd recipe, Kaldi-style: point them at queue.pl / slurm.pl (from your Kaldi
# egs/wsj/s5/utils) to run on a grid, e.g.
#   export train_cmd="queue.pl --mem 4G --gpu 1"
#   export decode_cmd="queue.pl --mem 4G"
# Defaults: admmq's own run.pl (same calling convention: CMD [JOB=1:n] LOG COMMAND...).
# Already-set (exported) values win.
_admmq_common="$(cd "$(dirname "${BASH_SOURCE[0]}")/../common" && pwd)"
export train_cmd="${train_cmd:-$_admmq_common/run.pl}"
export decode_cmd="${decode_cmd:-$_admmq_common/run.pl}"
