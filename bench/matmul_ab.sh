#!/bin/bash
# Paired A/B of the AVX2 matmul kernels: the library in BUILD_DIR (default
# build/, i.e. the working tree as last built) against
# src/compute/cpu/matmul_avx2.cc at REV, in one process (see matmul_ab.cc).
#
#   bench/matmul_ab.sh REV [BUILD_DIR [REPS [TYPES [N [THREADS]]]]]
#   bench/matmul_ab.sh HEAD~1 build 11 BF16,Q4_SB 64 2
#
# REV's file is compiled against the current headers, so it must still fit
# them (kernels_avx2.h, kernels_avx512.h, quant.h). Only matmul_avx2.cc is
# copied: on an AVX-512 CPU a REV from session 9 on runs the current
# gemm_avx512.cc inside its own driver, an older REV its AVX2 micro-kernel.
# HUGINN_NO_AVX512=1 makes every version use the AVX2 one.
set -euo pipefail
rev=${1:?usage: bench/matmul_ab.sh REV [BUILD_DIR [REPS [TYPES [N [THREADS]]]]]}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
build=${2:-$root/build}
lib=$build/libhuginn_core.a
[[ -f $lib ]] || { echo "matmul_ab: no $lib (build first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$(git -C "$root" show "$rev:src/compute/cpu/matmul_avx2.cc")
for ns in ref ctl; do
  # The copy's names go to their own namespace; the using-directive lets it
  # see the helpers the headers declare in avx2.
  printf '%s\n' "$src" |
    sed "s/^namespace huginn::cpu::avx2 {\$/namespace huginn::cpu::avx2_$ns {\nusing namespace huginn::cpu::avx2;/" \
      >"$tmp/matmul_$ns.cc"
  grep -q "^namespace huginn::cpu::avx2_$ns {" "$tmp/matmul_$ns.cc" ||
    { echo "matmul_ab: $rev's matmul_avx2.cc has no 'namespace huginn::cpu::avx2 {' line" >&2; exit 1; }
done
${CXX:-g++} -O3 -DNDEBUG -std=c++20 -mavx2 -mfma -mf16c -I"$tmp" -I"$root/src" -I"$root/include" \
  "$root/bench/matmul_ab.cc" "$lib" -lpthread -o "$tmp/matmul_ab"
"$tmp/matmul_ab" "${@:3}"
