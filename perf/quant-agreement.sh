#!/usr/bin/env bash
# How often greedy decoding with weights quantized at load (--weights q8_0|q4_0) commits the same
# tokens as the unquantized model (perf/README.md, "Quantized weights").
#   perf/quant-agreement.sh [MODEL] [PROMPT_FILE] [TOKENS] [DEVICE]
# MODEL defaults to the embedded stories260K, PROMPT_FILE to perf/prompts/stories-test.txt (one
# prompt a line), TOKENS to 128, DEVICE to cpu. Prints, per weight type: prompts whose whole
# continuation is identical, the mean share of each continuation before its first differing token,
# and the share of positions that agree.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$repo/models/stories260K/stories260K.bin}"
prompts="${2:-$repo/perf/prompts/stories-test.txt}"
tokens="${3:-128}"
device="${4:-cpu}"
dotnet build -c Release "$repo/src/Cli" >/dev/null
kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
for weights in f32 q8_0 q4_0; do
    option=(); [ "$weights" = f32 ] || option=(--weights "$weights")
    while IFS= read -r prompt; do
        [ -n "$prompt" ] || continue
        "$kangaroo" generate --model "$model" --device "$device" --decoder autoregressive --max-new-tokens "$tokens" \
            --prompt "$prompt" --json "${option[@]}" 2>/dev/null | sed -n 's/.*"generated_ids":\[\([0-9,]*\)\].*/\1/p'
    done < "$prompts" > "$work/$weights"
done
echo "model $model, $(grep -c . "$prompts") prompts of $prompts, $tokens tokens, $device, greedy; load $(cut -d' ' -f1-3 /proc/loadavg)"
for weights in q8_0 q4_0; do
    python3 - "$work/f32" "$work/$weights" "$weights" <<'PY'
import sys
ref = [l.strip().split(',') for l in open(sys.argv[1])]
got = [l.strip().split(',') for l in open(sys.argv[2])]
same = sum(a == b for a, b in zip(ref, got))
def prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]: n += 1
    return n
share = sum(prefix(a, b) / max(len(a), 1) for a, b in zip(ref, got)) / len(ref)
positions = sum(min(len(a), len(b)) for a, b in zip(ref, got))
agree = sum(x == y for a, b in zip(ref, got) for x, y in zip(a, b))
print(f"{sys.argv[3]}: identical {same}/{len(ref)}; mean share before the first difference {share:.1%}; positions agreeing {agree}/{positions} ({agree / positions:.1%})")
PY
done
