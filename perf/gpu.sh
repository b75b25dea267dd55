#!/usr/bin/env bash
# GPU tests and benchmarks for a machine with an NVIDIA GPU.
#
#   perf/gpu.sh run REPORT_DIR         run in a checkout with the .NET SDK and ../shared beside it (or in an
#                                      unpacked bundle, below). First the whole CUDA test tier: every test
#                                      case on the "cuda" device and the PTX compile tests, with
#                                      KANGAROO_REQUIRE_CUDA=1 so that a missing or unusable GPU fails them
#                                      instead of skipping them. Then the benchmarks: kernels cpu vs cuda,
#                                      golden generations, stories260K decode (autoregressive, early-exit,
#                                      Kangaroo) and profiles, decode tokens/s of a random TinyLlama-shape
#                                      model (f16, and quantized at load to q8_0 and q4_0), the cost table of
#                                      a speculative round (stories260K, TinyLlama f16/bf16, stories110M f32)
#                                      and auto against autoregressive. Written to REPORT_DIR/gpu-report.md
#                                      (the test tier's TRX log beside it). Exit status 1 if a golden file
#                                      is missing (checked first, nothing runs), if the test tier could not
#                                      run or had a failure, or if a benchmark's check failed.
#   perf/gpu.sh tests REPORT_DIR       the CUDA test tier of `run` alone.
#   perf/gpu.sh publish [BUNDLE_DIR]   run HERE, for a GPU machine without internet: a bundle in BUNDLE_DIR
#                                      (default /tmp/kangaroo-gpu-bundle) and BUNDLE_DIR.tar.gz with
#                                      self-contained linux-x64 builds of `kangaroo` and `kangaroo-perf`, the
#                                      source tree, and ../shared's golden outputs and models (but
#                                      gguf-kquants, which no CUDA test reads); with GPU_SH_PACKAGES=1 also
#                                      the NuGet packages the tests restore, for a machine without internet
#                                      (about 160 MB more). The test tier still needs a .NET 10 SDK there
#                                      (`dotnet test`); without one `run` reports it as not run and exits 1.
#                                      A missing golden file fails the publish.
#
# GPU_SH_DRY_RUN=1 prints each step's command instead of running it (and still checks the goldens).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode="${1:-}"

# What the CUDA tier's tests and the benchmarks read from ../shared: each must exist.
goldens=(golden/stories260K-greedy.jsonl golden/tinystories656K-greedy.jsonl golden/gguf-greedy.jsonl
         golden/tokenizer-ids.jsonl golden/tinystories656K-tokenizer-ids.jsonl golden/chat-templates.jsonl
         models/stories260K/stories260K.bin models/TinyStories-656K/model.safetensors models/gguf/stories260K-f32.gguf)

# The CUDA tier: every DeviceData("cuda") case (display name `...(kind: "cuda")`), the PTX compile tests
# (CudaCompileTests) and DevicesTests' CUDA cases. (A display-name match ignores case; `dotnet test` passes
# the filter through MSBuild, which refuses the quotes and parentheses a narrower filter would need.)
cuda_filter='DisplayName~cuda'

check_goldens() { # shared dir: exits 1 naming every missing file
    local shared="$1" missing=()
    for f in "${goldens[@]}"; do [ -f "$shared/$f" ] || missing+=("$shared/$f"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        printf 'gpu.sh: missing golden data (tests and checks compare against it; nothing was run):\n' >&2
        printf '  %s\n' "${missing[@]}" >&2
        exit 1
    fi
}

case "$mode" in
publish)
    bundle="${2:-/tmp/kangaroo-gpu-bundle}"
    repo="$(cd "$here/.." && pwd)"
    [ -d "$repo/../shared" ] || { echo "gpu.sh: no ../shared beside $repo (golden outputs and models)" >&2; exit 1; }
    shared="$(cd "$repo/../shared" && pwd)"
    check_goldens "$shared"
    rm -rf "$bundle"
    mkdir -p "$bundle/bin" "$bundle/repo" "$bundle/shared"
    for project in src/Cli perf/Kangaroo.Native.Perf; do
        dotnet publish "$repo/$project" -c Release -r linux-x64 --self-contained true \
            -p:PublishTrimmed=false -p:DebugType=none -p:GenerateDocumentationFile=false -o "$bundle/bin" >/dev/null
    done
    # The source tree as committed plus untracked files git does not ignore (no bin/ or obj/).
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf -) | tar -xf - -C "$bundle/repo"
    cp -r "$shared/golden" "$bundle/shared/"
    mkdir -p "$bundle/shared/models"
    for m in "$shared"/models/*; do [ "$(basename "$m")" = gguf-kquants ] || cp -r "$m" "$bundle/shared/models/"; done
    if [ "${GPU_SH_PACKAGES:-0}" = 1 ]; then dotnet restore "$repo/tests/Kangaroo.Native.Tests" --packages "$bundle/nuget" >/dev/null; fi
    cp "$here/gpu.sh" "$bundle/gpu.sh"
    chmod +x "$bundle/gpu.sh"
    tar -C "$(dirname "$bundle")" -czf "$bundle.tar.gz" "$(basename "$bundle")"
    echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)), archive: $bundle.tar.gz ($(du -sh "$bundle.tar.gz" | cut -f1))"
    echo "there: tar -xzf $(basename "$bundle").tar.gz && $(basename "$bundle")/gpu.sh run REPORT_DIR"
    ;;
run|tests)
    report_dir="${2:?usage: gpu.sh run|tests REPORT_DIR}"
    dry="${GPU_SH_DRY_RUN:-0}"
    if [ -x "$here/bin/kangaroo" ] && [ -d "$here/repo" ]; then   # unpacked bundle
        bundled=1
        repo="$here/repo"; shared="$here/shared"
        kangaroo="$here/bin/kangaroo"; perf="$here/bin/kangaroo-perf"
    else                                                          # a checkout with the SDK
        bundled=0
        repo="$(cd "$here/.." && pwd)"
        shared="$repo/../shared"
        kangaroo="$repo/src/Cli/bin/Release/net10.0/kangaroo"; perf="$repo/perf/Kangaroo.Native.Perf/bin/Release/net10.0/kangaroo-perf"
    fi
    check_goldens "$shared"
    model="$repo/models/stories260K/stories260K.bin"; golden="$shared/golden/stories260K-greedy.jsonl"
    mkdir -p "$report_dir"
    report_dir="$(cd "$report_dir" && pwd)"
    report="$report_dir/gpu-report.md"
    device="${KANGAROO_DEVICE:-cuda}"
    status=0
    # shellcheck disable=SC2016  # the backticks are the report's Markdown fences
    section() { printf '\n## %s\n\n```\n%s\n```\n' "$1" "$2" >> "$report"; }
    run_step() { # title, command...: records output; a failing command fails the run but not the report
        local title="$1"; shift
        local out
        if [ "$dry" = 1 ]; then printf '== %s:' "$title"; printf ' %q' "$@"; echo; return; fi
        if out="$("$@" 2>&1)"; then section "$title" "$out"; else section "$title (FAILED)" "$out"; status=1; fi
        echo "== $title: done"
    }
    {
        echo "# Kangaroo.Native GPU report"
        echo
        echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "- commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo 'unknown (bundle)')"
        echo "- host: $(uname -srm); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB"
        echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
        echo "- device under test: $device"
    } > "$report"

    # 1. The CUDA test tier, required: a skipped case would be a GPU that was not there.
    if ! command -v dotnet >/dev/null || [ -z "$(dotnet --list-sdks 2>/dev/null)" ]; then
        section "CUDA test tier (FAILED: not run)" "no .NET SDK here: \`dotnet test\` is needed to run the tests (the bundle's builds are runtime-only)"
        status=1
        echo "== CUDA test tier: NOT RUN (no .NET SDK)"
    else
        restore=()
        # offline: the bundle's packages, and no vulnerability audit (it would ask nuget.org)
        if [ "$bundled" = 1 ] && [ -d "$here/nuget" ]; then export NUGET_PACKAGES="$here/nuget"; restore=(-p:NuGetAudit=false); fi
        tier_command=(dotnet test "$repo/tests/Kangaroo.Native.Tests" -c Release "${restore[@]}" --filter "$cuda_filter"
                      --logger "trx;LogFileName=cuda-tier.trx" --results-directory "$report_dir")
        # shellcheck disable=SC2317  # called through run_step
        tier() { KANGAROO_REQUIRE_CUDA=1 "${tier_command[@]}" 2>&1 | tail -60; return "${PIPESTATUS[0]}"; }
        if [ "$dry" = 1 ]; then printf '== CUDA test tier: KANGAROO_REQUIRE_CUDA=1'; printf ' %q' "${tier_command[@]}"; echo
        else run_step "CUDA test tier (KANGAROO_REQUIRE_CUDA=1, filter: $cuda_filter)" tier; fi
        if [ "$dry" != 1 ] && [ -f "$report_dir/cuda-tier.trx" ]; then
            counters="$(grep -o '<Counters [^>]*>' "$report_dir/cuda-tier.trx" || true)"
            section "CUDA test tier counts" "$counters"
            executed="$(echo "$counters" | grep -o 'executed="[0-9]*"' | grep -o '[0-9]*' || echo 0)"
            if [ "${executed:-0}" -eq 0 ]; then section "CUDA test tier (FAILED)" "no test ran"; status=1; fi
        fi
    fi

    if [ "$mode" = tests ]; then echo "report: $report (exit status $status)"; exit $status; fi

    # 2. Benchmarks.
    if [ "$bundled" = 0 ]; then
        if [ "$dry" = 1 ]; then echo "== build: dotnet build -c Release src/Cli perf/Kangaroo.Native.Perf"
        else
            dotnet build -c Release "$repo/src/Cli" >/dev/null
            dotnet build -c Release "$repo/perf/Kangaroo.Native.Perf" >/dev/null
        fi
    fi
    run_step "devices" "$kangaroo" devices
    run_step "kernels vs reference (check: max relative error <= 1e-3)" "$perf" kernels --devices "cpu,$device" --max-error 1e-3
    run_step "golden generations on $device" "$perf" golden --golden "$golden" --model "$model" --device "$device"
    run_step "host memory bandwidth" "$perf" membw
    # Issue 3's table: autoregressive, early-exit and Kangaroo (the shipped adapter) side by side per device.
    run_step "decode stories260K on cpu" "$kangaroo" bench --model "$model" --device cpu
    run_step "decode stories260K on $device" "$kangaroo" bench --model "$model" --device "$device"
    run_step "where Kangaroo's time goes on $device (synchronised per call)" "$perf" profile --model "$model" --device "$device" --decoder kangaroo
    run_step "where autoregressive time goes on $device (synchronised per call)" "$perf" profile --model "$model" --device "$device" --decoder autoregressive
    tiny="${TMPDIR:-/tmp}/kangaroo-tinyllama-f16"
    make_model() { [ "$dry" = 1 ] || [ -f "$1/model.safetensors" ] || "$perf" make-model --out "$1" --shape "$2" --dtype "$3" >/dev/null; }
    make_model "$tiny" tinyllama f16
    run_step "decode TinyLlama-shape (random f16 weights, 2.2 GB) on $device" "$kangaroo" bench --model "$tiny" --device "$device" --decoders autoregressive --prompts 2 --max-new-tokens 64
    for weights in q8_0 q4_0; do
        run_step "decode TinyLlama-shape quantized at load to $weights on $device" "$kangaroo" bench --model "$tiny" --device "$device" --weights "$weights" --decoders autoregressive --prompts 2 --max-new-tokens 64
    done
    # Issue 9's cost table: what a round's parts cost where speculation should pay (memory- and launch-bound shapes),
    # projected at the shipped adapter's held-out acceptance (--acceptance-from) and at the paper's 2.5 tokens per round.
    shipped="$(dirname "$model")/kangaroo-adapter.safetensors"
    run_step "round costs, stories260K with the shipped adapter, on $device" "$kangaroo" bench --costs --model "$model" --device "$device"
    run_step "round costs, TinyLlama-shape f16, exit layer 2, on $device" "$kangaroo" bench --costs --model "$tiny" --device "$device" --exit-layer 2 --draft-vocab 4096 --acceptance-from "$shipped"
    tiny_bf16="${TMPDIR:-/tmp}/kangaroo-tinyllama-bf16"
    make_model "$tiny_bf16" tinyllama bf16
    run_step "round costs, TinyLlama-shape bf16, exit layer 2, on $device" "$kangaroo" bench --costs --model "$tiny_bf16" --device "$device" --exit-layer 2 --draft-vocab 4096 --acceptance-from "$shipped"
    s110="${TMPDIR:-/tmp}/kangaroo-stories110m-f32"
    make_model "$s110" stories110m f32
    run_step "round costs, stories110M-shape f32, exit layer 2, on $device" "$kangaroo" bench --costs --model "$s110" --device "$device" --exit-layer 2 --draft-vocab 4096 --acceptance-from "$shipped"
    run_step "auto vs autoregressive, stories260K, on $device" "$kangaroo" bench --model "$model" --device "$device" --decoders auto
    echo "report: $report (exit status $status)"
    exit $status
    ;;
*)
    sed -n '2,28p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
