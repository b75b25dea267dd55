#!/usr/bin/env bash
# Installs an OpenCL runtime that ILGPU accepts: PoCL >= 4 (OpenCL C with generic address space).
#
# - Debian 13 / Ubuntu 24.04+: the distribution's pocl-opencl-icd is new enough and is used as is.
# - Debian 12: its PoCL 3.1 lacks generic address space, so PoCL is built from the Debian 13
#   (trixie) source package against Debian 12's LLVM 15 and installed to /opt/pocl.
# Either way the platform is registered in /etc/OpenCL/vendors (read by ocl-icd by default), so
# ILGPU finds it without any environment variable. Idempotent: a second run takes seconds.
# Needs root (apt-get). Logs of long steps go to /tmp/install-opencl/*.log.
# Where LLVM 15 cannot name the CPU (one newer than it), PoCL is configured with the closest target
# LLVM knows, chosen from the CPU's flags by pocl-cpu-target.sh, or INSTALL_OPENCL_CPU=<llc -mcpu name>.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PREFIX=/opt/pocl
VENDORS_DIR=/etc/OpenCL/vendors
ICD_FILE="$VENDORS_DIR/pocl-opt.icd"
WORK=/tmp/install-opencl
TRIXIE_SUITE=trixie
JOBS="$(nproc 2>/dev/null || echo 2)"

log() { echo "install-opencl: $*"; }
die() { echo "install-opencl: ERROR: $*" >&2; exit 1; }
# shellcheck source=pocl-cpu-target.sh
source "$(dirname "${BASH_SOURCE[0]}")/pocl-cpu-target.sh"

# run_quiet NAME CMD... : runs CMD with output in $WORK/NAME.log; on failure prints the log's tail.
run_quiet() {
    local name="$1"; shift
    local logf="$WORK/$name.log"
    if ! "$@" >"$logf" 2>&1; then
        echo "install-opencl: step '$name' failed; last lines of $logf:" >&2
        tail -n 40 "$logf" >&2
        return 1
    fi
}

# Finds the .NET-loadable libOpenCL.so (unversioned name; ILGPU imports "OpenCL").
have_libopencl_so() {
    local cache
    cache="$(ldconfig -p 2>/dev/null || true)"
    grep -q 'libOpenCL\.so ' <<<"$cache" \
        || ls /usr/lib/*/libOpenCL.so /usr/lib/libOpenCL.so >/dev/null 2>&1
}

# True when clinfo, using the system vendors dir only, shows a device with generic address space.
opencl_ok() {
    command -v clinfo >/dev/null 2>&1 || return 1
    have_libopencl_so || return 1
    # Capture first: 'clinfo | grep -q' fails under pipefail when grep exits early (SIGPIPE).
    local out
    out="$(env -u OCL_ICD_VENDORS -u OPENCL_VENDOR_PATH -u OCL_ICD_FILENAMES clinfo 2>/dev/null || true)"
    grep -Eq 'Generic address space support[[:space:]]+Yes' <<<"$out"
}

print_summary() {
    local out
    out="$(env -u OCL_ICD_VENDORS -u OPENCL_VENDOR_PATH -u OCL_ICD_FILENAMES clinfo 2>/dev/null || true)"
    log "platform: $(grep -m1 -E '^[[:space:]]*Platform Version' <<<"$out" | sed -E 's/^[[:space:]]*Platform Version[[:space:]]+//')"
    log "device:   $(grep -m1 -E '^[[:space:]]*Device Name' <<<"$out" | sed -E 's/^[[:space:]]*Device Name[[:space:]]+//')"
}

# ---------------------------------------------------------------- fast path (idempotence)
if opencl_ok; then
    log "an OpenCL device with generic address space support is already usable; nothing to do"
    print_summary
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get install, /opt, /etc/OpenCL/vendors)"
mkdir -p "$WORK" "$VENDORS_DIR"

if [ -e /etc/OpenCL/vendors/pocl.icd ] && dpkg -s pocl-opencl-icd >/dev/null 2>&1; then
    v="$(dpkg-query -W -f='${Version}' pocl-opencl-icd)"
    if ! dpkg --compare-versions "$v" ge 4; then
        log "note: distribution PoCL $v (no generic address space) is installed too; ILGPU ignores it"
    fi
fi

# A previous run may have built /opt/pocl but lost its registration: re-register and re-check.
register_opt_pocl() {
    local lib
    lib="$(find "$PREFIX" -name 'libpocl.so' \( -type f -o -type l \) 2>/dev/null | head -n1)"
    [ -n "$lib" ] || return 1
    echo "$lib" >"$ICD_FILE"
    log "registered $lib in $ICD_FILE"
}

log "apt-get update (system lists)"
run_quiet apt-update apt-get update || die "apt-get update failed"

BASE_PKGS=(ocl-icd-libopencl1 ocl-icd-opencl-dev clinfo)

# ---------------------------------------------------------------- distribution PoCL if >= 4
cand="$(apt-cache policy pocl-opencl-icd 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [ -n "$cand" ] && [ "$cand" != "(none)" ] && dpkg --compare-versions "$cand" ge 4; then
    log "distribution pocl-opencl-icd $cand is >= 4: installing it"
    run_quiet apt-install apt-get install -y --no-install-recommends pocl-opencl-icd "${BASE_PKGS[@]}" \
        || die "apt-get install pocl-opencl-icd failed"
else
    log "distribution pocl-opencl-icd is ${cand:-absent} (< 4): building PoCL from the $TRIXIE_SUITE source package into $PREFIX"
    log "installing build dependencies (LLVM 15, clang 15, hwloc, cmake)"
    run_quiet apt-install apt-get install -y --no-install-recommends \
        llvm-15-dev clang-15 libclang-15-dev libclang-cpp15-dev libhwloc-dev \
        pkg-config make cmake g++ xz-utils "${BASE_PKGS[@]}" \
        || die "apt-get install of build dependencies failed"

    if [ -e "$PREFIX/lib/libpocl.so" ] && register_opt_pocl && opencl_ok; then
        log "existing $PREFIX build works after re-registration"
    else
        # Debian mirror from the system's own apt sources (deb822 *.sources and one-line *.list).
        mirror="$(
            {
                awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' \
                    /etc/apt/sources.list.d/*.sources 2>/dev/null || true
                cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                    | sed -E 's/\[[^]]*\]//' \
                    | awk '$1=="deb" || $1=="deb-src" {print $2}' || true
            } | grep -E '^https?://[^ ]+/debian/?$' | head -n1
        )"
        [ -n "$mirror" ] || die "no Debian mirror (URI ending in /debian) found in /etc/apt/sources.list(.d); cannot fetch the $TRIXIE_SUITE pocl source"
        mirror="${mirror%/}"
        log "fetching pocl source from $mirror $TRIXIE_SUITE (private apt state under $WORK/apt)"

        APT_DIR="$WORK/apt"
        rm -rf "$APT_DIR" "$WORK/src"
        mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$WORK/src"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        signed=""
        [ -f "$keyring" ] && signed="[signed-by=$keyring] "
        echo "deb-src ${signed}$mirror $TRIXIE_SUITE main" >"$APT_DIR/sources.list"
        APT_OPTS=(
            -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
            -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$APT_DIR/lists"
            -o "Dir::Cache=$APT_DIR/cache"
            -o "APT::Sandbox::User=root"
        )
        run_quiet src-update apt-get "${APT_OPTS[@]}" update || die "apt-get update of the $TRIXIE_SUITE deb-src list failed"
        (cd "$WORK/src" && run_quiet src-download apt-get "${APT_OPTS[@]}" source --download-only pocl) \
            || die "apt-get source --download-only pocl failed"
        orig="$(ls "$WORK"/src/pocl_*.orig.tar.* 2>/dev/null | head -n1)"
        [ -n "$orig" ] || die "no pocl orig tarball downloaded (see $WORK/src-download.log)"
        log "downloaded $(basename "$orig")"
        tar -xf "$orig" -C "$WORK/src"
        srcdir="$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'pocl*' | head -n1)"
        [ -n "$srcdir" ] || die "could not unpack $orig"

        # PoCL's cmake takes the CPU from `llc --version` and stops where LLVM cannot name it. Then
        # the distro build gets the chosen target as the "detected" CPU (it refuses a forced one; at
        # run time it picks its kernel library and CPU from the CPU's features), and the host build
        # gets it forced (baked into libpocl: kernels compiled at run time use it, no variable needed).
        llc_out="$(llc-15 --version 2>&1)" || die "llc-15 --version failed: $llc_out"
        flags_line="$(grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo || true)"
        if [ -n "${INSTALL_OPENCL_CPU:-}" ]; then
            cpu="$INSTALL_OPENCL_CPU"
            log "CPU target $cpu: given by INSTALL_OPENCL_CPU"
        elif [ -n "$(llc_host_cpu "$llc_out")" ]; then
            cpu=""
            log "CPU target $(llc_host_cpu "$llc_out"): LLVM 15 names this CPU; PoCL detects it itself"
        else
            choice="$(pocl_cpu_target "$llc_out" "$flags_line")"
            cpu="${choice%%:*}"
            log "CPU target $choice"
        fi
        DISTRO_CPU=() HOST_CPU=()
        [ -z "$cpu" ] || { DISTRO_CPU=(-DLLC_HOST_CPU_AUTO="$cpu"); HOST_CPU=(-DLLC_HOST_CPU="$cpu"); }
        CMAKE_FLAGS=(
            -DCMAKE_BUILD_TYPE=Release
            -DWITH_LLVM_CONFIG=/usr/bin/llvm-config-15
            -DCMAKE_INSTALL_PREFIX="$PREFIX"
            -DENABLE_ICD=ON -DENABLE_TESTS=OFF -DENABLE_EXAMPLES=OFF
            -DENABLE_SPIRV=OFF -DENABLE_LEVEL0=OFF -DENABLE_HSA=OFF -DENABLE_CUDA=OFF
            -DENABLE_ALMAIF_DEVICE=OFF -DENABLE_REMOTE_CLIENT=OFF -DENABLE_REMOTE_SERVER=OFF
            -DENABLE_LOADABLE_DRIVERS=OFF -DSTATIC_LLVM=OFF
        )
        # build_pocl VARIANT EXTRA_CMAKE_FLAGS...: on failure, $failed says which step and why.
        failed="" step=""
        build_pocl() {
            local variant="$1"; shift
            local b="$WORK/build-$variant"
            rm -rf "$b"; mkdir -p "$b"
            log "cmake ($variant kernel library${cpu:+, CPU $cpu})"
            step="configure"
            if (cd "$b" && run_quiet "cmake-$variant" cmake "$srcdir" "${CMAKE_FLAGS[@]}" "$@"); then
                log "make -j$JOBS ($variant kernel library; log: $WORK/make-$variant.log)"
                step="make"
                if (cd "$b" && run_quiet "make-$variant" make -j"$JOBS"); then
                    log "make install -> $PREFIX"
                    rm -rf "$PREFIX"
                    step="install"
                    if (cd "$b" && run_quiet "install-$variant" make install); then
                        echo "pocl $(basename "$orig") kernellib=$variant cpu=${cpu:-detected} llvm=15" >"$PREFIX/BUILD-INFO"
                        return 0
                    fi
                fi
            fi
            local logf="$WORK/$([ "$step" = configure ] && echo cmake || echo "$step")-$variant.log" why=""
            grep -q "could not recognize your CPU" "$logf" 2>/dev/null && why="LLVM 15 cannot name this CPU; "
            failed="PoCL $step failed for the $variant kernel library (${why}see $logf)"
            return 1
        }
        # 'distro' builds the kernel library for all x86-64 CPU variants, so the result is portable
        # across CPUs (the machine that runs it may differ from the one that built it). If that
        # fails, fall back to a kernel library for this host's CPU only.
        if ! build_pocl distro -DKERNELLIB_HOST_CPU_VARIANTS=distro "${DISTRO_CPU[@]}"; then
            log "$failed; falling back to a host-CPU-only build"
            first="$failed"
            if ! build_pocl host "${HOST_CPU[@]}"; then
                try="INSTALL_OPENCL_CPU=<a CPU from 'llc-15 -mcpu=help', e.g. x86-64-v2> bash $0"
                [ "$step" = configure ] || try="bash $0 again after fixing the first error in that log (out of memory or disk?), or $try"
                die "$first; then $failed; try: $try"
            fi
        fi
        register_opt_pocl || die "no libpocl.so under $PREFIX after install"
        rm -rf "$WORK/src" "$WORK"/build-* "$WORK/apt"
    fi
fi

# ---------------------------------------------------------------- verification
have_libopencl_so || die "libOpenCL.so (unversioned, needed by .NET/ILGPU) is missing; install ocl-icd-opencl-dev"
if ! opencl_ok; then
    env -u OCL_ICD_VENDORS clinfo >"$WORK/clinfo.log" 2>&1 || true
    tail -n 20 "$WORK/clinfo.log" >&2
    die "clinfo shows no OpenCL device with 'Generic address space support: Yes' (full output: $WORK/clinfo.log)"
fi
log "OK: OpenCL device with generic address space support is usable"
print_summary
