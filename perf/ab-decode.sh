#!/usr/bin/env bash
# Decode speed of two builds of the kangaroo command on one model, alternating rounds (so load drifts
# hit both alike): greedy, autoregressive, 64 tokens after "Once upon a time", on the cpu device.
#   perf/ab-decode.sh BEFORE.dll AFTER.dll MODEL [ROUNDS]
# BEFORE/AFTER: src/Cli/bin/Release/net10.0/kangaroo.dll of two worktrees (e.g. a commit before and
# after a change). Prints one line per run with the load average.
set -euo pipefail
before=$1 after=$2 model=$3 rounds=${4:-3}
for r in $(seq 1 "$rounds"); do
  for side in before after; do
    dll=$before; [ "$side" = after ] && dll=$after
    tps=$(dotnet "$dll" generate --model "$model" --prompt "Once upon a time" --max-new-tokens 64 --device cpu --decoder autoregressive --json 2>/dev/null |
      python3 -c "import json,sys; print(round(json.load(sys.stdin)['tokens_per_second'], 1))")
    echo "$side round $r: $tps tok/s (load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
