#!/usr/bin/env bash
# GPU test-and-bench for a machine with an NVIDIA GPU that may have no .NET SDK and no internet.
#
#   perf/gpu.sh publish [BUNDLE_DIR]   run HERE (needs the .NET SDK): self-contained linux-x64 builds of
#                                      `kangaroo` and `kangaroo-perf` (one shared runtime), the embedded
#                                      stories260K model and the golden outputs, in BUNDLE_DIR
#                                      (default /tmp/kangaroo-gpu-bundle) and BUNDLE_DIR.tar.gz.
#   perf/gpu.sh run REPORT_DIR         run THERE, from the unpacked bundle (or a checkout with the SDK):
#                                      CUDA self-check (every kernel against the managed reference, and
#                                      greedy generation of the golden prompts, autoregressive and
#                                      early-exit, against llama2.c's ids), kernel benchmarks cpu vs cuda,
#                                      stories260K decode (autoregressive, early-exit, Kangaroo) and profiles,
#                                      decode tokens/s of a random TinyLlama-shape model (f16, and
#                                      quantized at load to q8_0 and q4_0), the cost
#                                      table of a speculative round (stories260K, TinyLlama f16/bf16,
#                                      stories110M f32) and auto against autoregressive,
#                                      written to REPORT_DIR/gpu-report.md. Exit status 1 if a check failed.
#
# The xunit tests themselves need `dotnet test` (the SDK); the self-check covers what the CUDA tier
# tests check (kernels vs reference, golden generations), without it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode="${1:-}"

case "$mode" in
publish)
    bundle="${2:-/tmp/kangaroo-gpu-bundle}"
    repo="$(cd "$here/.." && pwd)"
    shared="$(cd "$repo/../shared" 2>/dev/null && pwd || true)"
    rm -rf "$bundle"
    mkdir -p "$bundle/bin"
    for project in src/Cli perf/Kangaroo.Native.Perf; do
        dotnet publish "$repo/$project" -c Release -r linux-x64 --self-contained true \
            -p:PublishTrimmed=false -p:DebugType=none -p:GenerateDocumentationFile=false -o "$bundle/bin" >/dev/null
    done
    mkdir -p "$bundle/models" "$bundle/golden"
    cp -r "$repo/models/stories260K" "$bundle/models/"
    if [ -n "$shared" ] && [ -f "$shared/golden/stories260K-greedy.jsonl" ]; then
        cp "$shared/golden/stories260K-greedy.jsonl" "$bundle/golden/"
    else
        echo "warning: ../shared/golden not found; the bundle will skip the golden check" >&2
    fi
    cp "$here/gpu.sh" "$bundle/gpu.sh"
    chmod +x "$bundle/gpu.sh"
    tar -C "$(dirname "$bundle")" -czf "$bundle.tar.gz" "$(basename "$bundle")"
    echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)), archive: $bundle.tar.gz ($(du -sh "$bundle.tar.gz" | cut -f1))"
    echo "there: tar -xzf $(basename "$bundle").tar.gz && $(basename "$bundle")/gpu.sh run REPORT_DIR"
    ;;
run)
    report_dir="${2:?usage: gpu.sh run REPORT_DIR}"
    mkdir -p "$report_dir"
    report="$(cd "$report_dir" && pwd)/gpu-report.md"
    if [ -x "$here/bin/kangaroo" ]; then           # unpacked bundle
        kangaroo="$here/bin/kangaroo"; perf="$here/bin/kangaroo-perf"
        model="$here/models/stories260K/stories260K.bin"; golden="$here/golden/stories260K-greedy.jsonl"
    else                                           # a checkout with the SDK
        repo="$(cd "$here/.." && pwd)"
        dotnet build -c Release "$repo/src/Cli" >/dev/null
        dotnet build -c Release "$repo/perf/Kangaroo.Native.Perf" >/dev/null
        kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"; perf="$repo/perf/Kangaroo.Native.Perf/bin/Release/net10.0/kangaroo-perf"
        model="$repo/models/stories260K/stories260K.bin"; golden="$repo/../shared/golden/stories260K-greedy.jsonl"
    fi
    device="${KANGAROO_DEVICE:-cuda}"
    status=0
    section() { printf '\n## %s\n\n```\n%s\n```\n' "$1" "$2" >> "$report"; }
    run_step() { # title, command...: records output; a failing command fails the run but not the report
        local title="$1"; shift
        local out
        if out="$("$@" 2>&1)"; then section "$title" "$out"; else section "$title (FAILED)" "$out"; status=1; fi
        echo "== $title: done"
    }
    {
        echo "# Kangaroo.Native GPU report"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "- host: $(uname -srm); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB"
        echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
        echo "- device under test: $device"
    } > "$report"
    run_step "devices" "$kangaroo" devices
    run_step "kernels vs reference (check: max relative error <= 1e-3)" "$perf" kernels --devices "cpu,$device" --max-error 1e-3
    if [ -f "$golden" ]; then
        run_step "golden generations on $device" "$perf" golden --golden "$golden" --model "$model" --device "$device"
    fi
    run_step "host memory bandwidth" "$perf" membw
    # Issue 3's table: autoregressive, early-exit and Kangaroo (the shipped adapter) side by side per device.
    run_step "decode stories260K on cpu" "$kangaroo" bench --model "$model" --device cpu
    run_step "decode stories260K on $device" "$kangaroo" bench --model "$model" --device "$device"
    run_step "where Kangaroo's time goes on $device (synchronised per call)" "$perf" profile --model "$model" --device "$device" --decoder kangaroo
    run_step "where autoregressive time goes on $device (synchronised per call)" "$perf" profile --model "$model" --device "$device" --decoder autoregressive
    tiny="${TMPDIR:-/tmp}/kangaroo-tinyllama-f16"
    [ -f "$tiny/model.safetensors" ] || "$perf" make-model --out "$tiny" --shape tinyllama --dtype f16 >/dev/null
    run_step "decode TinyLlama-shape (random f16 weights, 2.2 GB) on $device" "$kangaroo" bench --model "$tiny" --device "$device" --decoders autoregressive --prompts 2 --max-new-tokens 64
    for weights in q8_0 q4_0; do
        run_step "decode TinyLlama-shape quantized at load to $weights on $device" "$kangaroo" bench --model "$tiny" --device "$device" --weights "$weights" --decoders autoregressive --prompts 2 --max-new-tokens 64
    done
    # Issue 9's cost table: what a round's parts cost where speculation should pay (memory- and launch-bound shapes).
    run_step "round costs, stories260K with the shipped adapter, on $device" "$kangaroo" bench --costs --model "$model" --device "$device"
    run_step "round costs, TinyLlama-shape f16, exit layer 2, on $device" "$kangaroo" bench --costs --model "$tiny" --device "$device" --exit-layer 2 --draft-vocab 4096
    tiny_bf16="${TMPDIR:-/tmp}/kangaroo-tinyllama-bf16"
    [ -f "$tiny_bf16/model.safetensors" ] || "$perf" make-model --out "$tiny_bf16" --shape tinyllama --dtype bf16 >/dev/null
    run_step "round costs, TinyLlama-shape bf16, exit layer 2, on $device" "$kangaroo" bench --costs --model "$tiny_bf16" --device "$device" --exit-layer 2 --draft-vocab 4096
    s110="${TMPDIR:-/tmp}/kangaroo-stories110m-f32"
    [ -f "$s110/model.safetensors" ] || "$perf" make-model --out "$s110" --shape stories110m --dtype f32 >/dev/null
    run_step "round costs, stories110M-shape f32, exit layer 2, on $device" "$kangaroo" bench --costs --model "$s110" --device "$device" --exit-layer 2 --draft-vocab 4096
    run_step "auto vs autoregressive, stories260K, on $device" "$kangaroo" bench --model "$model" --device "$device" --decoders auto
    echo "report: $report"
    exit $status
    ;;
*)
    sed -n '2,19p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
