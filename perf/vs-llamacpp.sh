#!/usr/bin/env bash
# Our engine next to llama.cpp on the same GGUF files, same prompt ids, same thread count
# (perf/README.md, "Side by side with llama.cpp").
#   perf/vs-llamacpp.sh            # make the files (cached), then print the table
#   perf/vs-llamacpp.sh check      # greedy ids of both sides against ../shared/golden/gguf-greedy.jsonl
# Environment: ROUNDS (3; 0 makes the files only), THREADS (all cores), ONLY (rows, e.g.
# stories110m-q8_0,tinyllama-q4_k_m), KANGAROO_VS_DIR (where the files are cached, /tmp/kangaroo-vs),
# TOKENS (64), PREFILL (256), CONTEXT (512), BEFORE (another build's kangaroo-perf, e.g. of a worktree at
# an older commit: it runs as a third side, "before", and a second table compares our two builds).
# Each side is one process per row and round: `kangaroo-perf vs-llamacpp` (the cpu device) and
# `llamacpp-peer run` (llama.cpp through LLamaSharp's CPU build) take the same arguments and share
# their measuring code (perf/Kangaroo.Native.Perf/SideBySide.cs); rounds alternate which runs first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="$repo/../shared"
dir="${KANGAROO_VS_DIR:-/tmp/kangaroo-vs}"
rounds="${ROUNDS:-3}" threads="${THREADS:-$(nproc)}" tokens="${TOKENS:-64}" prefill="${PREFILL:-256}" context="${CONTEXT:-512}"
mkdir -p "$dir"

# llamacpp-peer is built by path, not from Kangaroo.Native.sln: LLamaSharp.Backend.Cpu brings ~150 MB of
# native builds for every platform, which `dotnet test Kangaroo.Native.sln` (CI, every fresh machine)
# would then restore and copy for nothing.
for project in src/Cli perf/Kangaroo.Native.Perf perf/LlamaCppPeer; do
    dotnet build -c Release "$repo/$project" -nologo -v q >"$dir/build.log" 2>&1 || { cat "$dir/build.log" >&2; exit 1; }
done
kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"
perf="$repo/perf/Kangaroo.Native.Perf/bin/Release/net10.0/kangaroo-perf"
peer="$repo/perf/LlamaCppPeer/bin/Release/net10.0/llamacpp-peer"

# side (ours|llama.cpp) model prompt-ids tokens prefill > JSON line, or exit status != 0 with the reason on stderr
side() {
    local program=("$perf" vs-llamacpp)
    case "$1" in before) program=("$BEFORE" vs-llamacpp) ;; llama.cpp) program=("$peer" run) ;; esac
    "${program[@]}" --model "$2" --prompt-ids "$3" --tokens "$4" --prefill "$5" --threads "$threads" --context "$context"
}

if [ "${1:-}" = check ]; then
    # Every record of the golden file for TinyStories-656K-Q8_0.gguf (or the file named), decoded as long
    # as the golden (its EOS included: our side stops there, llama.cpp's goes on and is compared up to it).
    name="${2:-TinyStories-656K-Q8_0.gguf}"
    status=0
    while IFS=' ' read -r prompt golden; do
        count=$(tr ',' '\n' <<<"$golden" | wc -l)
        for who in ours llama.cpp; do
            got=$(side "$who" "$shared/models/gguf/$name" "$prompt" "$count" 1 | jq -r '.generated_ids | join(",")')
            if [ "$got" = "$golden" ] || [ "${got:0:${#golden}}," = "$golden," ]; then verdict=identical; else
                verdict="DIFFERS at $(paste -d' ' <(tr ',' '\n' <<<"$got") <(tr ',' '\n' <<<"$golden") | awk '$1 != $2 { print NR - 1; exit }')"; status=1; fi
            echo "$name | prompt $prompt | $count tokens | $who: $verdict"
        done
    done < <(jq -r --arg m "$name" 'select(.model == $m) | "\(.prompt_ids | join(",")) \(.generated_ids | join(","))"' "$shared/golden/gguf-greedy.jsonl")
    exit $status
fi

# The rows: model-type, its GGUF file, the prompt ids. Random-weight shapes from `kangaroo-perf make-model`
# (f16) converted by `kangaroo convert`, K-quants by llama.cpp's own quantizer from the f16 file.
rows=()
add() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]] && rows+=("$1 $2 $3") || true; }
stories260K="$shared/models/stories260K/stories260K.bin"; [ -f "$stories260K" ] || stories260K="$repo/models/stories260K/stories260K.bin"
add stories260K-f32 "$dir/stories260K-f32.gguf" 1,403,407,261,378                                # "Once upon a time" (golden)
add tinystories656K-q8_0 "$shared/models/gguf/TinyStories-656K-Q8_0.gguf" 1,80,875,566,1844      # "Tom and Sue went to the park" (golden)
for shape in stories110m tinyllama; do
    for type in f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k; do add "$shape-$type" "$dir/$shape-$type.gguf" 1,80,875,566,1844; done
done
[ ${#rows[@]} -gt 0 ] || { echo "ONLY=$ONLY selects no row" >&2; exit 1; }
make_file() { # row file
    [ -f "$2" ] && return
    local shape="${1%-*}" type="${1##*-}" partial="${2%.gguf}.partial.gguf" # convert writes GGUF for a .gguf name
    case "$type" in
        q4_k_m|q5_k_m|q6_k) make_file "$shape-f16" "$dir/$shape-f16.gguf"; "$peer" quantize "$dir/$shape-f16.gguf" "$partial" "$type" >/dev/null ;;
        *) local source="$dir/$shape-hf"; [ "$shape" = stories260K ] && source="$stories260K"
           [ -f "$source/config.json" ] || [ "$shape" = stories260K ] || "$perf" make-model --shape "$shape" --dtype f16 --out "$source" >/dev/null
           "$kangaroo" convert --model "$source" --out "$partial" --dtype "$type" >/dev/null ;;
    esac
    mv "$partial" "$2"
}
for row in "${rows[@]}"; do read -r name file _ <<<"$row"; make_file "$name" "$file"; done
[ "$rounds" -gt 0 ] || exit 0

results="$dir/results-$(date -u +%Y%m%dT%H%M%S)"; mkdir -p "$results"
echo "$(date -u '+%F %T UTC'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; threads $threads;" \
     "decode $tokens tokens after a 5-token prompt; prefill $prefill; context $context; $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
    order=(ours llama.cpp ${BEFORE:+before}); [ $((round % 2)) = 1 ] || order=(${BEFORE:+before} llama.cpp ours)
    for row in "${rows[@]}"; do
        read -r name file prompt <<<"$row"
        for who in "${order[@]}"; do
            side "$who" "$file" "$prompt" "$tokens" "$prefill" >"$results/$name.$who.$round.json" 2>"$results/$name.$who.$round.err" || true
        done
    done
    echo "round $round done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done

python3 - "$results" "$tokens" "${rows[@]}" <<'PY'
import json, os, statistics, sys
results, tokens, rows = sys.argv[1], int(sys.argv[2]), [r.split()[0] for r in sys.argv[3:]]
def runs(name, who):
    out, errors = [], []
    for f in sorted(os.listdir(results)):
        if f.startswith(f"{name}.{who}.") and f.endswith(".json"):
            text = open(os.path.join(results, f)).read().strip()
            if text: out.append(json.loads(text))
            else: errors.append(open(os.path.join(results, f[:-4] + "err")).read().strip().splitlines()[-1:] or ["no output"])
    return out, errors
def cell(ours, theirs, key, fmt):
    if not ours or not theirs:
        return " / ".join(f"{statistics.median(r[key] for r in side):{fmt}}" if side else "-" for side in (ours, theirs))
    a, b = statistics.median(r[key] for r in ours), statistics.median(r[key] for r in theirs)
    return f"{a:{fmt}} / {b:{fmt}} ({a / b:.2f}x)"
print("| model | type | decode tok/s ours / llama.cpp | prefill tok/s ours / llama.cpp | peak RSS MB ours / llama.cpp | first token ms ours / llama.cpp | greedy ids |")
print("| --- | --- | --- | --- | --- | --- | --- |")
notes, detail = [], None
for name in rows:
    ours, ours_errors = runs(name, "ours")
    theirs, their_errors = runs(name, "llama.cpp")
    detail = detail or next((r["detail"] for r in theirs), None)
    model, _, kind = name.rpartition("-")
    if not ours and ours_errors:
        notes.append(f"{name}, ours: {ours_errors[0][0]}")
    if their_errors:
        notes.append(f"{name}, llama.cpp: {their_errors[0][0]}")
    ids = "-"
    if ours and theirs:
        a, b = ours[0]["generated_ids"], theirs[0]["generated_ids"]
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        ids = "same" if a == b else f"same for {same}"
        if len(a) < tokens: ids += f"; ours stopped at EOS after {len(a)}"
    mark = "" if ours or not ours_errors else "not loadable (ours) " if "not supported" in ours_errors[0][0] else "failed (ours) "
    print(f"| {model} | {kind} | {mark}{cell(ours, theirs, 'decode_tokens_per_second', '.1f')} | {cell(ours, theirs, 'prefill_tokens_per_second', '.0f')} | "
          f"{cell(ours, theirs, 'peak_rss_mb', '.0f')} | {cell(ours, theirs, 'first_token_ms', '.0f')} | {ids} |")
print(f"\nMedians over rounds; ratio = ours / llama.cpp. llama.cpp: {detail}")
for n in notes: print(f"- {n}")
if any(runs(name, "before")[0] for name in rows):
    print("\n| model | type | decode tok/s after / before | prefill tok/s after / before | peak RSS MB after / before | first token ms after / before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in rows:
        (ours, _), (before, _) = runs(name, "ours"), runs(name, "before")
        model, _, kind = name.rpartition("-")
        print(f"| {model} | {kind} | {cell(ours, before, 'decode_tokens_per_second', '.1f')} | {cell(ours, before, 'prefill_tokens_per_second', '.0f')} | "
              f"{cell(ours, before, 'peak_rss_mb', '.0f')} | {cell(ours, before, 'first_token_ms', '.0f')} |")
print(f"JSON of every run: {results}")
PY
