#!/usr/bin/env bash
# Decode tokens/s of one random-weight model in f16 and quantized at load to q8_0 and q4_0: the three
# types back to back in each round (one `kangaroo bench` process each), ROUNDS rounds, then the means
# and the ratios to f16. This produced the six-round tables of perf/README.md ("Quantized weights on
# the TinyLlama-1.1B shape") and README's q8_0/q4_0 decode means.
#   perf/quant-decode-rounds.sh [ROUNDS] [SHAPE] [DEVICE]
# ROUNDS defaults to 6, SHAPE to tinyllama (`kangaroo-perf make-model` shapes: tinyllama, stories110m,
# tiny-gqa for a quick check), DEVICE to cpu. The f16 model is made once in
# ${TMPDIR:-/tmp}/quant-SHAPE-f16 (2.2 GB for tinyllama; never committed). Each bench is
# `--decoders autoregressive --prompts 2 --max-new-tokens 32`. The environment passes through, so
# `DOTNET_EnableAVX512=0 perf/quant-decode-rounds.sh 2` gives the AVX2-only rounds. Quote a round's
# numbers only with its load average (printed with it): this machine is shared.
set -euo pipefail
rounds="${1:-6}"
shape="${2:-tinyllama}"
device="${3:-cpu}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dotnet build -c Release "$repo/src/Cli" >/dev/null
dotnet build -c Release "$repo/perf/Kangaroo.Native.Perf" >/dev/null
kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"
perf="$repo/perf/Kangaroo.Native.Perf/bin/Release/net10.0/kangaroo-perf"
model="${TMPDIR:-/tmp}/quant-$shape-f16"
[ -f "$model/model.safetensors" ] || "$perf" make-model --shape "$shape" --dtype f16 --out "$model" >/dev/null
decode() { # weights: decode tok/s of the autoregressive baseline
    local option=()
    [ "$1" = f16 ] || option=(--weights "$1")
    "$kangaroo" bench --model "$model" --device "$device" --decoders autoregressive --prompts 2 --max-new-tokens 32 --json "${option[@]}" 2>/dev/null |
        sed -n 's/.*"Decoder":"autoregressive","TokensPerSecond":\([0-9.]*\).*/\1/p'
}
echo "model $model ($shape, f16 on disk), device $device, $rounds rounds; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo
echo "| round (load) | f16 | q8_0 | q4_0 | q8_0 vs f16 | q4_0 vs f16 |"
echo "| --- | --- | --- | --- | --- | --- |"
results=()
for r in $(seq "$rounds"); do
    f16=$(decode f16); q8=$(decode q8_0); q4=$(decode q4_0)
    if [ -z "$f16" ] || [ -z "$q8" ] || [ -z "$q4" ]; then echo "round $r: a bench printed no decode speed" >&2; exit 1; fi
    results+=("$f16 $q8 $q4")
    awk -v r="$r" -v load="$(cut -d' ' -f1 /proc/loadavg)" -v a="$f16" -v b="$q8" -v c="$q4" \
        'BEGIN { printf "| %d (%s) | %.2f | %.2f | %.2f | %.2fx | %.2fx |\n", r, load, a, b, c, b / a, c / a }'
done
printf '%s\n' "${results[@]}" | awk '{ a += $1; b += $2; c += $3 } END {
    printf "| mean | %.2f | %.2f | %.2f | %.2fx | %.2fx |\n", a / NR, b / NR, c / NR, b / a, c / a }'
