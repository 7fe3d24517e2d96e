#!/usr/bin/env bash
# Build the Kaldi programs admmq's Kaldi drop-in, recipes and tests run, from Kaldi's source.
#
#   recipes/common/install_kaldi.sh [--cache DIR] [--tarball FILE] [--nj N] [--retry]
#
# Source: data/kaldi/kaldi-f4007661-subset.tar.gz (Kaldi commit f4007661, unchanged; Apache-2.0;
# data/kaldi/SOURCE.md), or --tarball / $ADMMQ_KALDI_TARBALL. Built with Debian's OpenFst 1.7.9 and
# OpenBLAS (as root the missing packages are apt-installed unless ADMMQ_NO_APT is set:
# g++ make libfst-dev libfst-tools libopenblas-dev liblapacke-dev libgfortran-12-dev), with two
# one-line source fixes made here (see fix_sources below). About 9 minutes of CPU: 5 minutes on 2 idle cores.
#
# Writes into the cache (default ${XDG_CACHE_HOME:-~/.cache}/admmq/kaldi):
#   bin/             lattice-to-nbest nbest-to-linear linear-to-nbest nbest-to-lattice lattice-best-path
#                    lattice-1best lattice-scale lattice-add-penalty lattice-compose lattice-lmrescore
#                    lattice-lmrescore-const-arpa lattice-rmali lattice-copy nbest-to-ctm arpa2fst
#                    arpa-to-const-arpa (OpenFst's fstcompile, fstproject, ... come from libfst-tools)
#   kaldi/           Kaldi's scripts from the same source: egs/wsj/s5/{steps/pytorchnn,utils},
#                    egs/swbd/s5c/local, scripts/rnnlm, COPYING
#   path.sh          `. path.sh` puts bin/ on PATH
#   VERSION          the build recipe, the source's sha256 and the programs built
# A cache whose VERSION matches the source is reused. A failed build leaves its log in
# build-failed.log and is not tried again until that file is removed (or --retry is given).
# Exit status 0 when the programs are there, 1 when not; one line on stderr says which.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/admmq/kaldi"
tarball="${ADMMQ_KALDI_TARBALL:-$ROOT/data/kaldi/kaldi-f4007661-subset.tar.gz}"
jobs="$(nproc 2>/dev/null || echo 1)"
retry=false
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache="$2"; shift 2;;
    --tarball) tarball="$2"; shift 2;;
    --nj) jobs="$2"; shift 2;;
    --retry) retry=true; shift;;
    -h|--help) usage; exit 0;;
    *) echo "install_kaldi.sh: unknown argument $1" >&2; usage >&2; exit 2;;
  esac
done

LATBIN="lattice-to-nbest nbest-to-linear linear-to-nbest nbest-to-lattice lattice-best-path lattice-1best
        lattice-scale lattice-add-penalty lattice-compose lattice-lmrescore lattice-lmrescore-const-arpa
        lattice-rmali lattice-copy nbest-to-ctm"
LMBIN="arpa2fst arpa-to-const-arpa"
APT_PACKAGES="g++ make libfst-dev libfst-tools libopenblas-dev liblapacke-dev libgfortran-12-dev"

[ -f "$tarball" ] || { echo "install_kaldi.sh: no Kaldi source at $tarball (--tarball FILE)" >&2; exit 1; }
BUILD=2  # raise when the build changes (the cache is then rebuilt): 2 = C++17, rpaths into the cache
version="build $BUILD, source $(sha256sum "$tarball" | cut -d' ' -f1), programs $(echo $LATBIN $LMBIN)"

have_all() {
  [ -f "$cache/VERSION" ] && [ "$(cat "$cache/VERSION")" = "$version" ] || return 1
  local p
  for p in $LATBIN $LMBIN; do [ -x "$cache/bin/$p" ] || return 1; done
  command -v fstproject >/dev/null 2>&1 || [ -x /usr/bin/fstproject ]
}

if have_all; then
  echo "install_kaldi.sh: Kaldi programs already built in $cache/bin (reused)" >&2
  exit 0
fi
if [ -f "$cache/build-failed.log" ] && ! $retry; then
  echo "install_kaldi.sh: no Kaldi programs: an earlier build failed ($cache/build-failed.log; delete it or" \
       "pass --retry to try again)" >&2
  exit 1
fi

mkdir -p "$cache"
rm -f "$cache/VERSION"
log="$cache/build.log"
: > "$log"
fail() {
  echo "install_kaldi.sh: $1" >> "$log"
  mv "$log" "$cache/build-failed.log"
  echo "install_kaldi.sh: building Kaldi's programs failed: $1; log: $cache/build-failed.log" >&2
  exit 1
}

# --- prerequisites
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${ADMMQ_NO_APT:-}" ]; then
  need=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
  if [ -n "$need" ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need; } >> "$log" 2>&1 \
      || fail "apt-get install$need failed"
  fi
fi
multiarch="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
fst_so="/usr/lib/$multiarch/libfst.so"
blas_dir="/usr/lib/$multiarch/openblas-pthread"
blas_inc="/usr/include/$multiarch/openblas-pthread"
[ -f /usr/include/fst/fst.h ] && [ -f "$fst_so" ] || fail "no OpenFst headers/library (apt-get install libfst-dev)"
[ -f "$blas_inc/cblas.h" ] && [ -f "$blas_dir/libopenblas.so" ] || fail "no OpenBLAS (apt-get install libopenblas-dev)"
[ -f /usr/include/lapack.h ] || fail "no lapack.h (apt-get install liblapacke-dev)"
command -v fstproject >/dev/null 2>&1 || fail "no fstproject (apt-get install libfst-tools)"
fst_version="$(dpkg-query -W -f='${Version}' libfst-dev 2>/dev/null | sed 's/-.*//')"
[ -n "$fst_version" ] || fail "cannot tell the OpenFst version"

# --- sources
build="$cache/build.tmp"
rm -rf "$build"
mkdir -p "$build"
tar xzf "$tarball" -C "$build" >> "$log" 2>&1 || fail "cannot unpack $tarball"
src="$build/kaldi/src"
[ -f "$src/configure" ] || fail "$tarball holds no kaldi/src/configure"

# The two source fixes this toolchain needs (Debian 12: LAPACK 3.11, OpenFst 1.7.9):
# 1. LAPACK 3.11's lapack.h declares the Fortran routines with hidden string-length arguments, so
#    the direct calls of stptri_/dgesvd_/... in matrix/cblas-wrappers.h have too few arguments;
#    lapack.h's LAPACK_stptri(...)-style macros add them.
# 2. OpenFst >= 1.7.4's FstPrinter::Print takes std::ostream&, while fstext/openfst_compat.h passes
#    a pointer for versions below 1.8 (Kaldi issue #4393).
fix_sources() {
  local f1="$src/matrix/cblas-wrappers.h" f2="$src/fstext/openfst_compat.h"
  sed -i -E 's/\b([sd])(tptri|gesvd|sptri|sptrf)_\(/LAPACK_\1\2(/g' "$f1"
  grep -Eq '\b[sd](tptri|gesvd|sptri|sptrf)_\(' "$f1" && return 1
  [ "$(grep -Ec 'LAPACK_[sd](tptri|gesvd|sptri|sptrf)\(' "$f1")" = 8 ] || return 1
  sed -i 's/printer\.Print(&os, s);/printer.Print(os, s);/' "$f2"
  ! grep -q 'printer\.Print(&os' "$f2"
}
fix_sources || fail "the two source fixes did not apply to this Kaldi source"

# C++17, not configure's C++14: Debian compiled libfst with C++17, where OpenFst's headers declare
# SymbolTable::AddSymbol/Find with std::string_view; compiled as C++14 the same virtual functions take
# const std::string&, and arpa2fst (which builds a symbol table) crashes inside libfst
# (std::_Hash_bytes <- DenseSymbolMap::InsertOrFind <- SymbolTableImpl::AddSymbol).
# configure wants directories holding only include/ and lib/ (--fst-root=/usr would add
# -isystem /usr/include and break #include_next <stdlib.h>)
# (kept in the cache: the programs' rpaths name them)
deps="$cache/deps"
rm -rf "$deps"
mkdir -p "$deps/fst/include" "$deps/fst/lib" "$deps/openblas"
ln -s /usr/include/fst "$deps/fst/include/fst"
ln -s "$fst_so" "$deps/fst/lib/libfst.so"
ln -s "$blas_inc" "$deps/openblas/include"
ln -s "$blas_dir" "$deps/openblas/lib"

t0=$(date +%s)
(
  cd "$src" \
    && ./configure --static --static-fst=no --static-math=no --use-cuda=no --fst-root="$deps/fst" \
         --fst-version="$fst_version" --mathlib=OPENBLAS --openblas-root="$deps/openblas" \
    && sed -i -E -e 's/(^|[[:space:]])-g([[:space:]]|$)/\1\2/' -e 's/^CXXLANGVERSION = .*/CXXLANGVERSION = c++17/' \
         kaldi.mk \
    && grep -q '^CXXLANGVERSION = c++17$' kaldi.mk \
    && for d in base matrix util tree hmm fstext lat lm; do make -C "$d" -j"$jobs" || exit 1; done \
    && make -C latbin -j"$jobs" ADDLIBS="../lat/kaldi-lat.a ../lm/kaldi-lm.a ../fstext/kaldi-fstext.a \
         ../hmm/kaldi-hmm.a ../tree/kaldi-tree.a ../util/kaldi-util.a ../matrix/kaldi-matrix.a \
         ../base/kaldi-base.a" $LATBIN \
    && make -C lmbin -j"$jobs" $LMBIN
) >> "$log" 2>&1 || fail "configure/make failed"

# --- install: programs, scripts, path.sh; VERSION last (it marks a finished cache)
rm -rf "$cache/bin" "$cache/kaldi"
mkdir -p "$cache/bin.tmp"
for p in $LATBIN; do cp "$src/latbin/$p" "$cache/bin.tmp/"; done
for p in $LMBIN; do cp "$src/lmbin/$p" "$cache/bin.tmp/"; done
strip "$cache/bin.tmp/"* 2>/dev/null || true
rm -rf "$src"
mv "$build/kaldi" "$cache/kaldi"
rm -rf "$build"
mv "$cache/bin.tmp" "$cache/bin"
cat > "$cache/path.sh" <<'EOF'
# Kaldi programs built by admmq's recipes/common/install_kaldi.sh: `. path.sh` puts them first on PATH
export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bin:$PATH"
EOF
"$cache/bin/lattice-copy" --help > /dev/null 2>> "$log" || [ $? = 1 ] || fail "the built lattice-copy does not run"
echo "$version" > "$cache/VERSION"
rm -f "$cache/build-failed.log"
echo "install_kaldi.sh: built $(echo $LATBIN $LMBIN | wc -w) Kaldi programs into $cache/bin in" \
     "$(( $(date +%s) - t0 )) s (OpenFst $fst_version, OpenBLAS, $jobs jobs)" >&2
