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
# Where the metalroot binaries come from. Relative paths are taken from the
# repository top so the scripts can be called from anywhere.
METALROOT_BIN_DIR="${METALROOT_BIN_DIR:-target/release}"
case "$METALROOT_BIN_DIR" in
    /*) ;;
    *) METALROOT_BIN_DIR="$REPO_ROOT/$METALROOT_BIN_DIR" ;;
esac
export METALROOT_BIN_DIR

# log MSG...: timestamped progress on stderr, so stdout stays usable for
# values a caller captures (the kernel version, paths).
log() {
    printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# hash_inputs PATH...: one sha256 over the contents *and names* of every file
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
                        printf 'F %s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
                    fi
                done)
        elif [[ -f "$p" ]]; then
            printf 'F %s %s\n' "$p" "$(sha256sum <"$p" | cut -d' ' -f1)"
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
