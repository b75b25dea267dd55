#!/usr/bin/env bash
# llama2.c's run.c next to our cpu device on stories260K, in one session (perf/README.md).
#   perf/llama2c.sh LLAMA2C_SOURCE_DIR [ROUNDS]
# LLAMA2C_SOURCE_DIR holds run.c (e.g. `git archive` of github.com/karpathy/llama2.c, outside the
# repository: it is never committed). Builds run.c with -O3 -march=native (and -fopenmp), then
# alternates run.c and `kangaroo bench --device cpu` ROUNDS times (default 3) and prints medians.
set -euo pipefail
src="${1:?usage: llama2c.sh LLAMA2C_SOURCE_DIR [ROUNDS]}"
rounds="${2:-3}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$repo/../shared/models/stories260K"
[ -f "$models/stories260K.bin" ] || models="$repo/models/stories260K"
tok="$models/tok512.bin"; [ -f "$tok" ] || { echo "need tok512.bin (llama2.c tokenizer) in $models" >&2; exit 1; }
gcc -O3 -march=native -o "$src/run" "$src/run.c" -lm
gcc -O3 -march=native -fopenmp -o "$src/runomp" "$src/run.c" -lm 2>/dev/null || true
dotnet build -c Release "$repo/src/Cli" >/dev/null
kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"
prompts=("Once upon a time" "One day, a little girl named Lily" "Tom and his dog" "The sun was shining and" "There was a big red ball" "Sam wanted to play" "In a small house" "The little bird")
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
runc() { # binary: median tok/s over the prompts
    for p in "${prompts[@]}"; do
        OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}" "$1" "$models/stories260K.bin" -z "$tok" -t 0 -n 256 -i "$p" 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p'
    done | median
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for r in $(seq "$rounds"); do
    c=$(runc "$src/run")
    # OpenMP spins when cores are oversubscribed: on a loaded machine set LLAMA2C_OPENMP=0.
    o=$([ "${LLAMA2C_OPENMP:-1}" = 1 ] && [ -x "$src/runomp" ] && runc "$src/runomp" || echo n/a)
    k=$("$kangaroo" bench --device cpu --decoders autoregressive --json | sed -n 's/.*"TokensPerSecond":\([0-9.]*\).*/\1/p')
    echo "round $r: run.c $c tok/s, run.c+OpenMP $o tok/s, kangaroo cpu $k tok/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
