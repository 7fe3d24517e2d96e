#!/usr/bin/env bash
# Estimate an n-gram ARPA LM (default order 4) from training text with a real tool.
#
#   recipes/common/make_4gram.sh [options] TEXT OUT.arpa[.gz]
#
# TEXT: one sentence a line (plain or .gz); --kaldi-text drops each line's first field (utt id).
# Tools (--tool):
#   lmplz   kenlm's estimator, modified Kneser-Ney (what most ASR users use). Found on PATH, in
#           --cache, or built there on demand from the kenlm source distribution on PyPI (needs
#           network, cmake, g++, boost and zlib headers; about 75 s on 2 cores; as root the
#           missing Debian packages are apt-installed unless ADMMQ_NO_APT is set). bin/setup-env
#           builds it (--install-lmplz). A failed build leaves its log in --cache/build-failed.log.
#   irstlm  Debian's irstlm (apt-get install irstlm), --irstlm-method isb (interpolated improved
#           shift-beta; default) or wb (Witten-Bell). irstlm's ikn/msb stop on PTB ("lower order
#           count-of-counts cannot be estimated properly") and kn crashes.
#   auto    lmplz if already available, else irstlm if installed (with one line saying that
#           this 4-gram is weaker: PTB test PPL about 170.8 against lmplz's 142.7), else build
#           lmplz.
# The unknown word: a literal <unk> in TEXT (PTB has 45k) is the unknown-word class, and the
# output's <unk> carries its estimated probability, as SRILM's `ngram-count -unk` would give.
# lmplz refuses <unk> in its input, so it is renamed to a placeholder for lmplz and renamed back
# in the ARPA, where the probability of lmplz's own (unseen) <unk> unigram is added to it.
# irstlm treats <unk> as its unknown word directly.
#
# Options:
#   --tool auto|lmplz|irstlm   (default auto)
#   --order N                  (default 4)
#   --irstlm-method isb|wb     (default isb)
#   --memory 2G                lmplz -S
#   --cache DIR                where lmplz is built (default ${XDG_CACHE_HOME:-~/.cache}/admmq/kenlm)
#   --kaldi-text               TEXT is a Kaldi text file (utt-id w1 w2 ...)
#   --install-lmplz            only make sure lmplz is available (build it into --cache), then exit;
#                              exit status 1 (log in --cache/build-failed.log) when it cannot
set -euo pipefail

tool=auto
order=4
irstlm_method=isb
memory=2G
cache="${XDG_CACHE_HOME:-$HOME/.cache}/admmq/kenlm"
kaldi_text=false
install_lmplz=false
KENLM_VERSION=0.3.0
PLACEHOLDER="<unk-class-for-lmplz>"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --tool) tool="$2"; shift 2;;
    --order) order="$2"; shift 2;;
    --irstlm-method) irstlm_method="$2"; shift 2;;
    --memory) memory="$2"; shift 2;;
    --cache) cache="$2"; shift 2;;
    --kaldi-text) kaldi_text=true; shift;;
    --install-lmplz) install_lmplz=true; shift;;
    -h|--help) usage; exit 0;;
    --*) echo "make_4gram.sh: unknown option $1" >&2; usage >&2; exit 2;;
    *) break;;
  esac
done
if ! $install_lmplz; then
  [ $# -eq 2 ] || { usage >&2; exit 2; }
  text="$1"
  out="$2"
  [ -f "$text" ] || { echo "make_4gram.sh: no such file: $text" >&2; exit 1; }
fi
case "$tool" in auto|lmplz|irstlm) ;; *) echo "make_4gram.sh: --tool must be auto, lmplz or irstlm" >&2; exit 2;; esac
case "$irstlm_method" in isb|wb) ;; *) echo "make_4gram.sh: --irstlm-method must be isb or wb" >&2; exit 2;; esac
IRSTLM="${IRSTLM:-/usr/lib/irstlm}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

find_lmplz() {
  if command -v lmplz >/dev/null 2>&1; then command -v lmplz; return 0; fi
  if [ -x "$cache/bin/lmplz" ]; then echo "$cache/bin/lmplz"; return 0; fi
  return 1
}

build_lmplz() {
  echo "make_4gram.sh: building kenlm's lmplz $KENLM_VERSION into $cache (about 75 s on 2 cores)" >&2
  mkdir -p "$cache"
  local log="$cache/build.log"
  : > "$log"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${ADMMQ_NO_APT:-}" ]; then
    local need=""
    for p in cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev \
             libboost-test-dev zlib1g-dev; do
      dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need; } >> "$log" 2>&1 \
        || echo "make_4gram.sh: apt-get install$need failed" >> "$log"
    fi
  fi
  local py="${PYTHON:-}"
  if [ -z "$py" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then py="$ROOT/.venv/bin/python"; else py="$(command -v python3)"; fi
  fi
  local work rc=0
  work="$(mktemp -d)"
  # (set -e does not act inside a subshell tested by ||: every step is chained with &&)
  (
    cd "$work" \
      && "$py" -m pip download -q --no-deps --no-binary kenlm "kenlm==$KENLM_VERSION" -d . \
      && tar xzf kenlm-*.tar.gz && cd kenlm-*/ && mkdir -p build && cd build \
      && cmake -DCMAKE_BUILD_TYPE=Release .. \
      && make -j"$(nproc)" lmplz build_binary \
      && mkdir -p "$cache/bin" && cp bin/lmplz bin/build_binary "$cache/bin/"
  ) >> "$log" 2>&1 || rc=1
  rm -rf "$work"
  if [ $rc = 0 ] && [ -x "$cache/bin/lmplz" ]; then
    rm -f "$cache/build-failed.log"
    return 0
  fi
  mv "$log" "$cache/build-failed.log"
  echo "make_4gram.sh: building lmplz failed (needs network for PyPI, cmake, g++, boost and zlib headers);" \
       "log: $cache/build-failed.log" >&2
  return 1
}

if $install_lmplz; then
  find_lmplz >/dev/null || build_lmplz || exit 1
  echo "make_4gram.sh: lmplz is $(find_lmplz)" >&2
  exit 0
fi

if [ "$tool" = auto ]; then
  if find_lmplz >/dev/null; then tool=lmplz
  elif [ -x "$IRSTLM/bin/tlm" ]; then
    tool=irstlm
    echo "make_4gram.sh: note: no lmplz (recipes/common/make_4gram.sh --install-lmplz builds it), so irstlm" \
         "$irstlm_method: a weaker 4-gram (PTB test PPL about 170.8 with isb vs 142.7 with lmplz), as" \
         "irstlm cannot estimate modified Kneser-Ney on PTB" >&2
  else tool=lmplz
  fi
fi

tmp="$(mktemp -d)"
part=""
trap 'rm -rf "$tmp" ${part:+"$part"}' EXIT
# the training text, plain, without Kaldi utterance ids
if $kaldi_text; then
  gzip -cdf "$text" | cut -d' ' -f2- > "$tmp/train.txt"
else
  gzip -cdf "$text" > "$tmp/train.txt"
fi

case "$tool" in
  lmplz)
    lmplz="$(find_lmplz)" || { build_lmplz || exit 1; lmplz="$cache/bin/lmplz"; }
    awk -v ph="$PLACEHOLDER" '{ for (i = 1; i <= NF; i++) if ($i == "<unk>") $i = ph; print }' "$tmp/train.txt" \
      | "$lmplz" -o "$order" -S "$memory" -T "$tmp" --discount_fallback \
      > "$tmp/raw.arpa" 2> "$tmp/lmplz.log" || { cat "$tmp/lmplz.log" >&2; exit 1; }
    if grep -q -- "$PLACEHOLDER" "$tmp/raw.arpa"; then
      # fold lmplz's unseen <unk> into the placeholder, then name the placeholder <unk>
      awk -v ph="$PLACEHOLDER" '
        FNR == 1 { pass++ }
        pass == 1 && /^\\1-grams:/ { in1 = 1; next }
        pass == 1 && in1 && /^$/ { in1 = 0 }
        pass == 1 && in1 { split($0, f, "\t"); if (f[2] == "<unk>") punk = f[1]; next }
        pass == 1 { next }
        /^ngram 1=/ { split($0, c, "="); print "ngram 1=" c[2] - 1; next }
        /^\\1-grams:/ { in1 = 1; print; next }
        in1 && /^$/ { in1 = 0 }
        in1 {
          n = split($0, f, "\t")
          if (f[2] == "<unk>") next
          if (f[2] == ph) {
            p = log(10 ^ f[1] + 10 ^ punk) / log(10)
            line = sprintf("%.7g\t<unk>", p); if (n > 2) line = line "\t" f[3]; print line; next
          }
        }
        { gsub(ph, "<unk>"); print }
      ' "$tmp/raw.arpa" "$tmp/raw.arpa" > "$tmp/lm.arpa"
    else
      mv "$tmp/raw.arpa" "$tmp/lm.arpa"
    fi
    ;;
  irstlm)
    [ -x "$IRSTLM/bin/tlm" ] || { echo "make_4gram.sh: irstlm not found in $IRSTLM (apt-get install irstlm)" >&2; exit 1; }
    "$IRSTLM/bin/add-start-end.sh" < "$tmp/train.txt" > "$tmp/train.se"
    "$IRSTLM/bin/tlm" -tr="$tmp/train.se" -n="$order" -lm="$irstlm_method" -ps=no -o="$tmp/lm.arpa" \
      > "$tmp/tlm.log" 2>&1 || { cat "$tmp/tlm.log" >&2; exit 1; }
    ;;
esac

grep -q '^\\end\\' "$tmp/lm.arpa" || { echo "make_4gram.sh: $tool wrote no complete ARPA file" >&2; exit 1; }
counts="$(sed -n 's/^ngram *\([0-9]*\)= *\([0-9]*\)/\1-grams: \2/p' "$tmp/lm.arpa" | paste -sd' ')"
part="$out.tmp.$$"
case "$out" in
  *.gz) gzip -c "$tmp/lm.arpa" > "$part" ;;
  *) cp "$tmp/lm.arpa" "$part" ;;
esac
mv "$part" "$out"
echo "make_4gram.sh: $tool, order $order -> $out ($counts)" >&2
