# Sourced by install-opencl.sh: the CPU name PoCL is configured with.
#
# PoCL's cmake takes the host CPU from `llc --version` ("Host CPU: znver3") and stops when LLVM
# cannot name it ("Host CPU: (unknown)": a CPU newer than the LLVM, such as Zen 5 for LLVM 15).
# Then we choose the closest target that LLVM knows from the CPU's own feature flags: on x86-64 the
# highest x86-64-vN level whose features /proc/cpuinfo lists (these levels hold only what the flags
# guarantee, where a model name such as znver3 or sapphirerapids would drop AVX-512 or add AMX);
# on aarch64 the Neoverse core whose features it lists; else LLVM's baseline.
# tests/Kangaroo.Native.Tests/Installer/PoclCpuTargetTests.cs runs these functions on recorded outputs.

# llc_host_cpu LLC_VERSION_OUTPUT: the CPU LLVM names ("znver3"); nothing when it cannot name it.
llc_host_cpu() {
    local cpu
    cpu="$(sed -n -E 's/^[[:space:]]*Host CPU:[[:space:]]*([^[:space:]]+).*/\1/p' <<<"$1" | head -n1)"
    case "$cpu" in "" | "(unknown)" | generic) ;; *) echo "$cpu" ;; esac
}

# pocl_cpu_target LLC_VERSION_OUTPUT CPUINFO_FLAGS_LINE: prints one line, "TARGET: why".
# CPUINFO_FLAGS_LINE is /proc/cpuinfo's "flags : ..." (x86) or "Features : ..." (aarch64) line.
pocl_cpu_target() {
    local llc_out="$1" flags named llvm triple
    flags=" $(tr -s '[:space:]' ' ' <<<"${2#*:}") "
    named="$(llc_host_cpu "$llc_out")"
    if [ -n "$named" ]; then
        echo "$named: LLVM names this CPU itself"
        return
    fi
    llvm="$(sed -n -E 's/.*LLVM version ([0-9]+).*/\1/p' <<<"$llc_out" | head -n1)"
    triple="$(sed -n -E 's/^[[:space:]]*Default target:[[:space:]]*([^[:space:]]+).*/\1/p' <<<"$llc_out" | head -n1)"
    local why="LLVM ${llvm:-?} cannot name this CPU (llc: Host CPU: (unknown))"
    # _missing FLAG...: those of FLAGs the CPU does not list (nothing when it lists them all)
    _missing() {
        local f out=""
        for f; do [[ "$flags" == *" $f "* ]] || out="$out $f"; done
        echo "${out# }"
    }
    case "$triple" in
    x86_64-* | amd64-*)
        # The levels of the x86-64 psABI. LZCNT (flag "abm") is left out of v3: every CPU with AVX2
        # and BMI1 has it, but hypervisors hide the flag (this project's Zen 5 machine does).
        local v2="cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3"
        local v3="$v2 avx avx2 bmi1 bmi2 f16c fma movbe xsave"
        local v4="$v3 avx512f avx512bw avx512cd avx512dq avx512vl"
        if [ -z "$(_missing $v4)" ]; then
            echo "x86-64-v4: $why; its flags have AVX-512 F/BW/CD/DQ/VL, AVX2, FMA and BMI2 (the x86-64-v4 level)"
        elif [ -z "$(_missing $v3)" ]; then
            echo "x86-64-v3: $why; its flags have AVX2, FMA and BMI2 (the x86-64-v3 level) but not $(_missing $v4) for x86-64-v4"
        elif [ -z "$(_missing $v2)" ]; then
            echo "x86-64-v2: $why; its flags have SSE4.2, SSSE3 and POPCNT (the x86-64-v2 level) but not $(_missing $v3) for x86-64-v3"
        else
            echo "x86-64: $why; its flags lack $(_missing $v2) for x86-64-v2, so the x86-64 baseline"
        fi
        ;;
    aarch64-* | arm64-*)
        local v1="asimddp atomics lrcpc ilrcpc flagm fphp asimdhp dcpop sve i8mm bf16"
        if [ -z "$(_missing $v1 sve2 svebitperm frint flagm2 sb)" ]; then
            echo "neoverse-n2: $why; its features have SVE2, BF16, I8MM and Armv8.5 (as Neoverse N2)"
        elif [ -z "$(_missing $v1)" ]; then
            echo "neoverse-v1: $why; its features have SVE, BF16, I8MM and Armv8.4 (as Neoverse V1) but not $(_missing sve2 svebitperm frint flagm2 sb) for neoverse-n2"
        elif [ -z "$(_missing asimddp atomics lrcpc fphp asimdhp dcpop)" ]; then
            echo "neoverse-n1: $why; its features have dot product, LSE atomics, RCpc and FP16 (as Neoverse N1) but not $(_missing $v1) for neoverse-v1"
        else
            echo "generic: $why; its features lack $(_missing asimddp atomics lrcpc fphp asimdhp dcpop) for neoverse-n1, so the Armv8-A baseline"
        fi
        ;;
    *)
        echo "generic: $why; no closer target is known here for ${triple:-this architecture}"
        ;;
    esac
}
