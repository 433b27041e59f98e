#!/bin/bash
# Build a test initrd containing metalroot and the test-only add-on.
#
#   tests/vm/lib/build-initrd.sh dracut|mkosi OUT
#
# metalroot's binaries come from ${METALROOT_BIN_DIR:-target/release}:
#   metalroot            -> /usr/bin/metalroot
#   metalroot-generator  -> /usr/lib/systemd/system-generators/metalroot-generator
#                           (if absent: a symlink to metalroot, for a
#                           multi-call binary)
#   units/*              -> /usr/lib/systemd/system/ (if the repo has units/)
#
# dracut: the product module dracut/90metalroot plus the test module
#   tests/vm/initrd-addon/dracut/99metaltest, both symlinked into
#   /usr/lib/dracut/modules.d/ (dracut finds modules only there).
# mkosi: the top-level mkosi.conf, with the staged binaries in
#   target/mkosi-tree/ and, given on the command line only, the guest
#   kernel's module tree and the add-on tree.
#
# Cached: OUT is rebuilt only when the hash of its inputs (binaries, units,
# module or mkosi config, add-on, guest kernel version, test CA, this script)
# differs from OUT.stamp.
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"

[[ $EUID -eq 0 ]] || die "build-initrd.sh must run as root"
[[ $# -eq 2 ]] || die "usage: build-initrd.sh dracut|mkosi OUT"
BUILDER=$1
OUT=$(realpath -m "$2")

KVER="$(guest_kver)"
CA="$(ensure_test_cert)"
BIN="$METALROOT_BIN_DIR"
UNITS="$REPO_ROOT/units"
ADDON="$VM_DIR/initrd-addon"

[[ -x "$BIN/metalroot" ]] || die "no $BIN/metalroot: build it (cargo build --release) or set METALROOT_BIN_DIR"

# Drivers for --drivers (dracut). The product module asks for the same set
# in installkernel(); listing them here too keeps the test initrd honest if
# that ever shrinks, and adds ext4 for the smoke root.
DRIVERS="nvme squashfs overlay loop zram ext4 xfs vfat nls_cp437 nls_iso8859_1
usb-storage xhci_pci xhci_hcd uas sd_mod sr_mod virtio_scsi virtio_blk virtio_net
virtio_pci md_mod raid0 raid1 raid10 dm_mod dm_snapshot dm_crypt dm_multipath
dm_round_robin iscsi_tcp libiscsi scsi_transport_iscsi iscsi_ibft af_packet crc32c
aesni_intel xts"

# The slim module set from the bench notes, plus ours. `crypt` comes in as a
# dependency of metalroot.
DRACUT_MODULES="systemd systemd-initrd systemd-networkd dracut-systemd mdraid lvm dm
udev-rules base fs-lib shutdown metalroot metaltest"

inputs_hash() {
    {
        echo "builder=$BUILDER kver=$KVER"
        hash_inputs "${BASH_SOURCE[0]}" "$BIN/metalroot" "$BIN/metalroot-generator" \
            "$REPO_ROOT/docs/man" "$UNITS" "$ADDON" "$CA"
        case "$BUILDER" in
            dracut) hash_inputs "$REPO_ROOT/dracut" ;;
            mkosi) hash_inputs "$REPO_ROOT/mkosi.conf" "$VM_DIR/mkosi"; mkosi_apt_sources ;;
        esac
    } | sha256sum | cut -d' ' -f1
}

# link_module NAME DIR: /usr/lib/dracut/modules.d/NAME -> DIR
link_module() {
    local link="/usr/lib/dracut/modules.d/$1"
    if [[ -e "$link" && ! -L "$link" ]]; then
        die "$link exists and is not our symlink; refusing to replace it"
    fi
    ln -sfn "$2" "$link"
}

# bench_omit_drivers: the guest kernel's network drivers other than
# virtio_net's (kernel/drivers/net/**, ~40 MB of mlx5, bnxt, ice, ...), for
# --omit-drivers. systemd-networkd pulls them all in through dracut's
# kernel-network-modules, as a real server needs; QEMU has one virtio NIC,
# so the bench leaves them out: every boot unpacks and loads less. The
# product module and mkosi.conf are unchanged. dracut keeps any module that
# --drivers names (virtio_net); net_failover is virtio_net's dependency.
bench_omit_drivers() {
    find "/usr/lib/modules/$KVER/kernel/drivers/net" -name '*.ko*' -printf '%f\n' |
        sed 's/\.ko\(\.[a-z]*\)\{0,1\}$//; s/-/_/g' | grep -vx 'net_failover' | LC_ALL=C sort -u | tr '\n' ' '
}

build_dracut() {
    link_module 90metalroot "$REPO_ROOT/dracut/90metalroot"
    link_module 99metaltest "$ADDON/dracut/99metaltest"
    local unit_env=()
    [[ -d "$UNITS" ]] && unit_env=(METALROOT_UNIT_DIR="$UNITS")
    # No host config: the test initrd must not depend on /etc/dracut.conf.d
    # of whoever runs it. Not compressed: see plain_cpio.
    mkdir -p "$CACHE/empty"
    env METALROOT_BIN_DIR="$BIN" METALROOT_MAN_DIR="$REPO_ROOT/docs/man" METALTEST_CA="$CA" "${unit_env[@]}" \
        dracut --force --conf /dev/null --confdir "$CACHE/empty" \
        --kver "$KVER" --no-hostonly --no-hostonly-cmdline --no-early-microcode \
        --no-compress -m "$(echo $DRACUT_MODULES)" --drivers "$(echo $DRIVERS)" \
        --omit-drivers "$(bench_omit_drivers)" \
        "$OUT.tmp" >"$OUT.log" 2>&1 ||
        { tail -n 40 "$OUT.log" >&2; die "dracut failed (log: $OUT.log)"; }
}

# The guest kernel's modules with vmlinuz inside: mkosi filters and depmods
# the modules of a kernel only when it finds /usr/lib/modules/<kver>/vmlinuz.
# Hard links (cp -al) make it free; built once per kernel version.
mkosi_kernel_tree() {
    local tree="$CACHE/mkosi/kernel-tree-$KVER"
    if [[ ! -f "$tree/usr/lib/modules/$KVER/vmlinuz" ]]; then
        rm -rf "$tree"
        mkdir -p "$tree/usr/lib/modules"
        cp -al "/usr/lib/modules/$KVER" "$tree/usr/lib/modules/" 2>/dev/null ||
            cp -a "/usr/lib/modules/$KVER" "$tree/usr/lib/modules/"
        cp "$(guest_vmlinuz)" "$tree/usr/lib/modules/$KVER/vmlinuz"
    fi
    echo "$tree"
}

# The staged binaries that mkosi.conf's ExtraTrees=target/mkosi-tree names.
stage_mkosi_tree() {
    local tree="$REPO_ROOT/target/mkosi-tree"
    rm -rf "$tree"
    mkdir -p "$tree/usr/bin" "$tree/usr/lib/systemd/system-generators" "$tree/usr/lib/systemd/system"
    install -m 755 "$BIN/metalroot" "$tree/usr/bin/metalroot"
    if [[ -x "$BIN/metalroot-generator" ]]; then
        install -m 755 "$BIN/metalroot-generator" "$tree/usr/lib/systemd/system-generators/metalroot-generator"
    else
        ln -s ../../../bin/metalroot "$tree/usr/lib/systemd/system-generators/metalroot-generator"
    fi
    if [[ -d "$UNITS" ]]; then
        cp -a "$UNITS/." "$tree/usr/lib/systemd/system/"
    fi
    # The man pages, checked in under docs/man.
    local sec
    for sec in 7 8; do
        install -D -m 644 -t "$tree/usr/share/man/man$sec" "$REPO_ROOT"/docs/man/*."$sec"
    done
}

# The test add-on as an extra tree: the emergency reporter plus the test CA
# (also appended to the CA bundle, as the dracut test module does).
mkosi_addon_tree() {
    local tree="$CACHE/mkosi/addon-tree"
    rm -rf "$tree"
    mkdir -p "$tree"
    cp -a "$ADDON/tree/." "$tree/"
    install -D -m 644 "$CA" "$tree/etc/metaltest/ca.pem"
    mkdir -p "$tree/etc/ssl/certs"
    {
        [[ -f /etc/ssl/certs/ca-certificates.crt ]] && cat /etc/ssl/certs/ca-certificates.crt
        cat "$CA"
    } >"$tree/etc/ssl/certs/ca-certificates.crt"
    echo "$tree"
}

# mkosi_apt_sources: the apt sources mkosi installs from, on the host's
# mirror (mirror.sh) so that no mirror host is written into the bench.
mkosi_apt_sources() {
    # "|| return": callers run this in command substitutions and pipelines,
    # where errexit is off.
    local main security
    main="$(apt_mirror bookworm)" || return
    security="$(apt_security_mirror bookworm)" || return
    cat <<EOF
# apt sources for mkosi builds, written by tests/vm/lib/build-initrd.sh from
# the host's mirror (tests/vm/lib/mirror.sh), given as --package-manager-tree.
# Given explicitly because mkosi 24 otherwise also adds a debian-debug
# repository, which the mirror here refuses as "not signed".
Types: deb
URIs: $main
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

# The package manager tree with those sources: mkosi uses the mkosi.sources
# it finds there instead of writing its own.
mkosi_pkgmngr_tree() {
    local tree="$CACHE/mkosi/pkgmngr"
    rm -rf "$tree"
    mkdir -p "$tree/etc/apt/sources.list.d"
    mkosi_apt_sources >"$tree/etc/apt/sources.list.d/mkosi.sources" || return
    echo "$tree"
}

build_mkosi() {
    local ktree addon pkgmngr work="$CACHE/mkosi/work"
    ktree="$(mkosi_kernel_tree)"
    addon="$(mkosi_addon_tree)"
    pkgmngr="$(mkosi_pkgmngr_tree)"
    stage_mkosi_tree
    rm -rf "$work"
    mkdir -p "$work/out" "$work/ws" "$CACHE/mkosi/pkgcache"
    # --incremental: mkosi keeps the image as it was right after package
    # installation and, next time, only lays the extra trees (metalroot's
    # binaries, the add-on) on a copy: ~20 s instead of ~55 s. Its own
    # cache invalidation is "rudimentary", so force a fresh one (-ff)
    # whenever the package-level inputs change (the apt sources too: a
    # changed mirror gets a fresh install).
    local pkg_stamp force=()
    pkg_stamp="$( { hash_inputs "$REPO_ROOT/mkosi.conf" "$VM_DIR/mkosi" "$pkgmngr"; echo tar; } | sha256sum | cut -d' ' -f1)"
    if [[ "$(cat "$CACHE/mkosi/incremental.stamp" 2>/dev/null)" != "$pkg_stamp" ]]; then
        force=(-ff)
        rm -f "$CACHE/mkosi/incremental.stamp"
    fi
    # --package tar: the emergency reporter writes a tar stream (tar is
    # Essential on Debian, so this is normally a no-op; it documents the need).
    (cd "$REPO_ROOT" && mkosi --directory "$REPO_ROOT" "${force[@]}" --incremental=yes \
        --output-dir "$work/out" --workspace-dir "$work/ws" \
        --cache-dir "$CACHE/mkosi/pkgcache" --package-manager-tree="$pkgmngr" \
        --extra-tree "$ktree" --extra-tree "$addon" --package tar \
        build) >"$OUT.log" 2>&1 ||
        { tail -n 40 "$OUT.log" >&2; die "mkosi failed (log: $OUT.log)"; }
    local img
    img="$(find "$work/out" -maxdepth 1 -type f -name 'metalroot-initrd*.cpio*' | head -n1)"
    [[ -n "$img" ]] || die "mkosi produced no metalroot-initrd*.cpio* in $work/out"
    mv "$img" "$OUT.tmp"
    rm -rf "$work"
    echo "$pkg_stamp" >"$CACHE/mkosi/incremental.stamp"
}

# plain_cpio FILE: FILE uncompressed if it is zstd. The guest kernel spent
# 3 s of every boot (of ~70 in the suite) unpacking a 40 MB zstd initrd on
# the emulated CPU; an uncompressed cpio is copied in a fraction of that,
# and QEMU loads the bigger file from the host's page cache for free.
plain_cpio() {
    if [[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' ')" == 28b52ffd ]]; then
        zstd -d -q -f -o "$1.plain" "$1" && mv "$1.plain" "$1"
    fi
}

main() {
    local want t0=$SECONDS
    want="$(inputs_hash)"
    if [[ -f "$OUT" && "$(cat "$OUT.stamp" 2>/dev/null)" == "$want" ]]; then
        echo "$OUT"
        return 0
    fi
    mkdir -p "$(dirname "$OUT")"
    rm -f "$OUT" "$OUT.stamp" "$OUT.tmp"
    log "building $BUILDER initrd for $KVER"
    case "$BUILDER" in
        dracut) build_dracut ;;
        mkosi) build_mkosi ;;
        *) die "unknown builder: $BUILDER (dracut|mkosi)" ;;
    esac
    plain_cpio "$OUT.tmp" || die "could not decompress $OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    echo "$want" >"$OUT.stamp"
    log "$BUILDER initrd: $(du -h --apparent-size "$OUT" | cut -f1) in $((SECONDS - t0)) s"
    echo "$OUT"
}

# Serialize concurrent builds of the same cache (two runs, or a developer
# building by hand during a run).
mkdir -p "$CACHE"
exec 8>"$CACHE/build-initrd.lock"
flock 8
main "$@"; exit $?
