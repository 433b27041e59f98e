# shellcheck shell=bash
# Shared paths and helpers for the VM test bench. Sourced, never executed.
#
# Everything the bench builds lives in one cache directory so that a run
# builds the guest kernel, the root and the initrds once and every scenario
# reuses them. The default is under target/ (already ignored by cargo users
# and wiped by `cargo clean`); override with METALTEST_CACHE.

if [[ -n "${_METALTEST_COMMON_SOURCED:-}" ]]; then
    return 0
fi
_METALTEST_COMMON_SOURCED=1

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$VM_DIR/../.." && pwd)"
CACHE="${METALTEST_CACHE:-$REPO_ROOT/target/vm-cache}"
# metalroot_deb: the path of the Debian package the initrds are built from:
# $METALROOT_DEB (relative paths from the repository top), else the one .deb
# packaging/build left in target/packages/. Fails when there is none or
# more than one.
metalroot_deb() {
    local deb="${METALROOT_DEB:-}" found
    if [[ -n "$deb" ]]; then
        [[ "$deb" == /* ]] || deb="$REPO_ROOT/$deb"
        [[ -f "$deb" ]] || return 1
        echo "$deb"
        return 0
    fi
    found=("$REPO_ROOT"/target/packages/metalroot_*.deb)
    [[ ${#found[@]} -eq 1 && -f "${found[0]}" ]] || return 1
    echo "${found[0]}"
}

# log MSG...: timestamped progress on stderr, so stdout stays usable for
# values a caller captures (the kernel version, paths).
log() {
    printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# hash_inputs PATH...: one sha256 over the contents, modes *and names* of every file
# under the given paths (missing paths hash as absent). Used as the stamp that
# decides whether a cached artifact must be rebuilt.
hash_inputs() {
    local p
    for p in "$@"; do
        if [[ -d "$p" ]]; then
            # Names and symlink targets matter too (enable symlinks).
            (cd "$p" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
                while IFS= read -r -d '' f; do
                    if [[ -L "$f" ]]; then
                        printf 'L %s -> %s\n' "$f" "$(readlink "$f")"
                    else
                        printf 'F %s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
                    fi
                done)
        elif [[ -f "$p" ]]; then
            printf 'F %s %s %s\n' "$p" "$(stat -c %a "$p")" "$(sha256sum <"$p" | cut -d' ' -f1)"
        else
            printf 'absent %s\n' "$p"
        fi
    done | sha256sum | cut -d' ' -f1
}

# guest_kver: the guest kernel version that setup-host.sh resolved.
guest_kver() {
    [[ -s "$CACHE/kernel/kver" ]] || die "no guest kernel yet: run tests/vm/lib/setup-host.sh"
    cat "$CACHE/kernel/kver"
}

guest_vmlinuz() {
    echo "$CACHE/kernel/$(guest_kver)/vmlinuz"
}

# guest_boot_kernel: what QEMU's -kernel boots. The vmlinuz's own
# decompressor (xz, on the emulated CPU) took 2.7 of the 3.3 s between
# QEMU's start and the kernel's first line; QEMU boots the uncompressed ELF
# through its PVH entry point (CONFIG_PVH) instead, the same kernel. Made
# once, beside the vmlinuz, with python3's lzma; prints the vmlinuz when the
# kernel has no PVH entry or is not xz-compressed.
guest_boot_kernel() {
    local dir
    dir="$CACHE/kernel/$(guest_kver)"
    if [[ ! -s "$dir/vmlinux.pvh" ]] && grep -qx 'CONFIG_PVH=y' "$dir/config" 2>/dev/null; then
        python3 - "$dir/vmlinuz" "$dir/vmlinux.pvh.tmp" <<'PY' && mv "$dir/vmlinux.pvh.tmp" "$dir/vmlinux.pvh"
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit(1)
elf = lzma.LZMADecompressor().decompress(data[start:])
if elf[:4] != b"\x7fELF":
    sys.exit(1)
open(sys.argv[2], "wb").write(elf)
PY
        rm -f "$dir/vmlinux.pvh.tmp"
    fi
    if [[ -s "$dir/vmlinux.pvh" ]]; then
        echo "$dir/vmlinux.pvh"
    else
        echo "$dir/vmlinuz"
    fi
}

# ensure_test_cert: a test CA and a server certificate signed by it, for the
# bench's HTTPS server; valid for the guest's view of the host (10.0.2.2) and
# for 127.0.0.1/localhost. A real CA + leaf rather than one self-signed cert,
# because webpki-based clients (rustls) refuse a CA certificate used as the
# server's own. Made once and kept in the cache: the initrds trust the CA
# (the test add-on puts it in their CA bundle), so it must not change.
# Files in $CACHE/tls: ca.pem (trust this), server.pem (leaf + CA chain),
# server.key. Prints the CA path.
ensure_test_cert() {
    local dir="$CACHE/tls"
    if [[ ! -s "$dir/ca.pem" || ! -s "$dir/server.pem" || ! -s "$dir/server.key" ]]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        (
            cd "$dir" || exit 1
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=metaltest CA" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -keyout ca.key -out ca.pem 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj "/CN=metaltest server" \
                -keyout server.key -out server.csr 2>/dev/null
            printf '%s\n' "subjectAltName=IP:10.0.2.2,IP:127.0.0.1,DNS:localhost" \
                "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" >server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -days 3650 -extfile server.ext -out server.crt 2>/dev/null
            cat server.crt ca.pem >server.pem
            rm -f server.csr server.ext
        )
    fi
    echo "$dir/ca.pem"
}

# on_exit CMD...: run CMD when the script exits (normally, on error, or on
# INT/TERM), last registered first. One trap for every library, so sourcing
# servers.sh does not clobber the runner's cleanup or the other way round.
_METALTEST_EXIT_HOOKS=()
on_exit() {
    _METALTEST_EXIT_HOOKS=("$*" "${_METALTEST_EXIT_HOOKS[@]}")
    trap _metaltest_run_exit_hooks EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
_metaltest_run_exit_hooks() {
    local rc=$? hook
    trap - EXIT
    for hook in "${_METALTEST_EXIT_HOOKS[@]}"; do
        eval "$hook" || true
    done
    return "$rc"
}
