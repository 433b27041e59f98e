#!/bin/bash
# Build a test initrd from metalroot's Debian package, as an operator does.
#
#   tests/vm/lib/build-initrd.sh dracut|mkosi OUT
#
# The package: $METALROOT_DEB (default: the one .deb packaging/build left in
# target/packages/).
#
# dracut: the package is installed on this host (apt-get install ./….deb,
#   as an operator installs it), which puts /usr/bin/metalroot, the
#   generator symlink, the units and the module 90metalroot where dracut
#   finds them; then `dracut --add metalroot` plus the test module
#   tests/vm/initrd-addon/dracut/99metaltest (copied into
#   /usr/lib/dracut/modules.d/, the only place dracut looks).
# operator: what an operator builds for a fleet from the installed package:
#   `dracut --no-hostonly --add metalroot`, with the host's own dracut
#   configuration, nothing of the bench (no test module, no driver lists,
#   compressed as dracut compresses by default).
# mkosi: the top-level mkosi.conf installs the package (VolatilePackages=
#   metalroot) from the directory holding the .deb; given on the command
#   line only: the guest kernel's module tree and the add-on tree.
#
# Cached: OUT is rebuilt only when the hash of its inputs (the .deb, the
# add-on, mkosi config, guest kernel version, test CA, this script) differs
# from OUT.stamp.
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"

[[ $EUID -eq 0 ]] || die "build-initrd.sh must run as root"
[[ $# -eq 2 ]] || die "usage: build-initrd.sh dracut|mkosi|operator OUT"
BUILDER=$1
OUT=$(realpath -m "$2")

KVER="$(guest_kver)"
CA="$(ensure_test_cert)"
DEB="$(metalroot_deb)" || die "no metalroot package: run packaging/build, or set METALROOT_DEB"
ADDON="$VM_DIR/initrd-addon"

# Drivers for --drivers (dracut). The product module asks for the same set
# in installkernel(); listing them here too keeps the test initrd honest if
# that ever shrinks, and adds ext4 for the smoke root.
DRIVERS="nvme squashfs overlay loop zram ext4 xfs vfat nls_cp437 nls_iso8859_1
usb-storage xhci_pci xhci_hcd uas sd_mod sr_mod virtio_scsi virtio_blk virtio_net
virtio_pci md_mod raid0 raid1 raid10 dm_mod dm_snapshot dm_crypt dm_multipath
dm_round_robin iscsi_tcp libiscsi scsi_transport_iscsi iscsi_ibft af_packet crc32c
aesni_intel xts"

# The slim module set from the bench notes; metalroot and the test module
# are added with --add as an operator adds metalroot. `crypt` comes in as a
# dependency of metalroot.
DRACUT_MODULES="systemd systemd-initrd systemd-networkd dracut-systemd mdraid lvm dm
udev-rules base fs-lib shutdown"

inputs_hash() {
    {
        echo "builder=$BUILDER kver=$KVER"
        hash_inputs "${BASH_SOURCE[0]}" "$DEB" "$ADDON" "$CA"
        case "$BUILDER" in
            dracut) ;;
            operator) { dracut --version 2>/dev/null || true; }; hash_inputs /etc/dracut.conf /etc/dracut.conf.d ;;
            mkosi) hash_inputs "$REPO_ROOT/mkosi.conf" "$VM_DIR/mkosi"; mkosi_apt_sources ;;
        esac
    } | sha256sum | cut -d' ' -f1
}

# install_deb_on_host: the package, installed as an operator installs it.
# Its dependencies are among setup-host.sh's packages, so apt needs no
# download. Older benches symlinked the module directory into the source
# tree: dpkg would write the package's files through that link into the
# tree, so such a link is removed first.
install_deb_on_host() {
    local mod=/usr/lib/dracut/modules.d/90metalroot
    if [[ -L "$mod" ]]; then
        log "removing the old bench's symlink $mod -> $(readlink "$mod")"
        rm -f "$mod"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        --reinstall "$DEB" >"$OUT.install.log" 2>&1 ||
        { cat "$OUT.install.log" >&2; die "installing $DEB failed"; }
    [[ "$(readlink -f /usr/lib/systemd/system-generators/metalroot-generator)" == /usr/bin/metalroot ]] ||
        die "the package did not install the generator as a symlink to /usr/bin/metalroot"
}

# install_test_module: the test-only dracut module, copied (not linked) into
# the one directory dracut reads modules from.
install_test_module() {
    local dir=/usr/lib/dracut/modules.d/99metaltest
    [[ -L "$dir" ]] && rm -f "$dir"
    rm -rf "$dir"
    cp -r "$ADDON/dracut/99metaltest" "$dir"
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
    install_deb_on_host
    install_test_module
    # No host config: the test initrd must not depend on /etc/dracut.conf.d
    # of whoever runs it. Not compressed: see plain_cpio.
    mkdir -p "$CACHE/empty"
    # metalroot_torrent=yes: the swarm helper for fleet-three-nodes, as a
    # site's dracut.conf.d would set it.
    env METALTEST_CA="$CA" METALTEST_TREE="$ADDON/tree" metalroot_torrent=yes \
        dracut --force --conf /dev/null --confdir "$CACHE/empty" \
        --kver "$KVER" --no-hostonly --no-hostonly-cmdline --no-early-microcode \
        --no-compress -m "$(echo $DRACUT_MODULES)" --add "metalroot metaltest" \
        --drivers "$(echo $DRIVERS)" --omit-drivers "$(bench_omit_drivers)" \
        "$OUT.tmp" >"$OUT.log" 2>&1 ||
        { tail -n 40 "$OUT.log" >&2; die "dracut failed (log: $OUT.log)"; }
}

# build_operator: the generic initrd an operator builds, and nothing else.
build_operator() {
    install_deb_on_host
    dracut --force --no-hostonly --add metalroot --kver "$KVER" "$OUT.tmp" >"$OUT.log" 2>&1 ||
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

# The directory mkosi installs metalroot from (--volatile-package-directory):
# just the .deb, so mkosi's local repository holds nothing else.
mkosi_package_dir() {
    local dir="$CACHE/mkosi/packages"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$DEB" "$dir/"
    echo "$dir"
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
    local ktree addon pkgmngr pkgdir work="$CACHE/mkosi/work"
    ktree="$(mkosi_kernel_tree)"
    addon="$(mkosi_addon_tree)"
    pkgmngr="$(mkosi_pkgmngr_tree)"
    pkgdir="$(mkosi_package_dir)"
    rm -rf "$work"
    mkdir -p "$work/out" "$work/ws" "$CACHE/mkosi/pkgcache"
    # --incremental: mkosi keeps the image as it was right after package
    # installation and, next time, only installs the volatile package
    # (metalroot) and lays the extra trees on a copy: ~20 s instead of ~55 s. Its own
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
        --volatile-package-directory "$pkgdir" \
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
        operator) build_operator ;;
        *) die "unknown builder: $BUILDER (dracut|mkosi|operator)" ;;
    esac
    # The operator's initrd stays as dracut made it.
    [[ "$BUILDER" == operator ]] || plain_cpio "$OUT.tmp" || die "could not decompress $OUT.tmp"
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
