#!/bin/bash
# Prepare a fresh Debian 12 host for the VM bench. Idempotent: a second run
# installs nothing and takes about a second.
#
#   tests/vm/lib/setup-host.sh        # installs packages + guest kernel
#
# What it does, and why:
#  1. apt packages (with --no-install-recommends, to keep CI installs short).
#     It calls `apt-get update` only when something is missing.
#  2. mkosi from bookworm-backports (bookworm's mkosi 14 is too old for
#     Include=mkosi-initrd). This pulls systemd 254 onto the host; dracut
#     keeps working with it.
#  3. The Debian guest kernel, resolved at run time from linux-image-amd64,
#     unpacked so that its modules live in /usr/lib/modules/<kver> (where
#     dracut and mkosi look) and its vmlinuz in the cache.
# The last line on stdout is the guest kernel version.
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"

[[ $EUID -eq 0 ]] || die "setup-host.sh must run as root (it installs packages)"

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    # the emulator
    qemu-system-x86
    # initrd builders and what they copy into the initrd
    dracut dracut-core dracut-network systemd udev kmod cpio zstd
    mdadm lvm2 dmsetup fdisk gdisk parted util-linux e2fsprogs xfsprogs
    dosfstools open-iscsi multipath-tools cryptsetup-bin
    # host-side servers: HTTP(S) and the iSCSI target
    nginx tgt openssl python3 curl
    # building the guest root
    debootstrap squashfs-tools
    # metalroot's packages (packaging/build: rpmbuild) and mkosi's local
    # apt repository, from which it installs the .deb (reprepro)
    rpm reprepro
    # reading results
    jq tar
    # signed images and measured boot (45-trust.sh): minisign signs on the
    # host, swtpm is the guest's TPM, and tpm2-tools puts tpm2_pcrextend
    # where the package-built dracut initrd takes it from
    minisign swtpm swtpm-tools tpm2-tools
    # the fleet scenario's .torrent (47-fleet.sh, issue 18)
    mktorrent
)
# Shipped by the `systemd` package on bookworm (252) and on
# bookworm-backports (254); there is no separate systemd-cryptsetup package
# before systemd 256. Checked after install so a future split is noticed.
SYSTEMD_CRYPTSETUP=/usr/lib/systemd/systemd-cryptsetup
BACKPORTS_LIST=/etc/apt/sources.list.d/metaltest-bookworm-backports.list

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

APT_UPDATED=
apt_update_once() {
    if [[ -z "$APT_UPDATED" ]]; then
        log "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
}

# Debian's postinst scripts would start nginx (on port 80 of every address),
# tgtd, iscsid and multipathd. The bench starts its own instances on
# 127.0.0.1, so forbid service starts during the install with policy-rc.d
# (already present on some images; only ours is removed afterwards).
POLICY_RC=/usr/sbin/policy-rc.d
OWN_POLICY=
block_service_starts() {
    if [[ ! -e "$POLICY_RC" ]]; then
        printf '#!/bin/sh\n# metaltest: no service starts during install\nexit 101\n' >"$POLICY_RC"
        chmod 755 "$POLICY_RC"
        OWN_POLICY=1
    fi
}
unblock_service_starts() {
    if [[ -n "$OWN_POLICY" ]]; then
        rm -f "$POLICY_RC"
    fi
}
trap unblock_service_starts EXIT

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        apt_update_once
        block_service_starts
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

install_mkosi() {
    if is_installed mkosi && dpkg --compare-versions "$(dpkg-query -W -f='${Version}' mkosi)" ge 24; then
        return 0
    fi
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # From the mirror the host's bookworm entry uses (mirror.sh).
        local mirror
        mirror="$(apt_mirror bookworm)"
        echo "deb $mirror bookworm-backports main" >"$BACKPORTS_LIST"
        APT_UPDATED=
    fi
    apt_update_once
    block_service_starts
    log "installing mkosi from bookworm-backports"
    # bubblewrap and systemd-container are hard dependencies; the rest are
    # what mkosi needs for a Debian cpio initrd and is only recommended.
    apt-get install -y -qq --no-install-recommends -t bookworm-backports \
        mkosi debian-archive-keyring zstd cpio >/dev/null
}

# The guest kernel. `linux-image-amd64` is a metapackage whose Depends names
# the versioned image package (linux-image-6.1.0-NN-amd64); the version moves
# with Debian point releases, so it is resolved here and never hard-coded.
# A cached kernel is reused unless METALTEST_REFRESH_KERNEL=1.
install_guest_kernel() {
    local kver=
    if [[ -s "$CACHE/kernel/kver" && -z "${METALTEST_REFRESH_KERNEL:-}" ]]; then
        kver="$(cat "$CACHE/kernel/kver")"
        if [[ -f "$CACHE/kernel/$kver/vmlinuz" && -f "/usr/lib/modules/$kver/modules.dep" ]]; then
            echo "$kver"
            return 0
        fi
    fi

    apt_update_once
    local dl="$CACHE/kernel/download"
    rm -rf "$dl"
    mkdir -p "$dl"
    (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root linux-image-amd64 >/dev/null)
    local meta pkg
    meta="$(ls "$dl"/linux-image-amd64_*.deb)"
    # Depends: linux-image-6.1.0-NN-amd64 (= 6.1.NNN-1)
    pkg="$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)"
    [[ -n "$pkg" ]] || die "cannot find the versioned kernel package in $(basename "$meta")"
    log "guest kernel package: $pkg"
    (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
    dpkg -x "$dl/${pkg}"_*.deb "$dl/x"
    kver="$(ls "$dl/x/lib/modules" 2>/dev/null || ls "$dl/x/usr/lib/modules")"
    [[ "$(wc -w <<<"$kver")" -eq 1 ]] || die "expected one module tree, got: $kver"

    local mods="$dl/x/lib/modules/$kver"
    [[ -d "$mods" ]] || mods="$dl/x/usr/lib/modules/$kver"
    mkdir -p /usr/lib/modules
    if [[ ! -f "/usr/lib/modules/$kver/modules.dep" ]]; then
        rm -rf "/usr/lib/modules/$kver"
        cp -a "$mods" "/usr/lib/modules/$kver"
        depmod -a "$kver"
    fi
    mkdir -p "$CACHE/kernel/$kver"
    cp "$dl/x/boot/vmlinuz-$kver" "$CACHE/kernel/$kver/vmlinuz"
    # dracut's kernel-modules code and mkosi both look for these beside the
    # modules; keep a copy of System.map/config too, harmless and small.
    cp "$dl/x/boot/config-$kver" "$CACHE/kernel/$kver/config" 2>/dev/null || true
    echo "$kver" >"$CACHE/kernel/kver"
    rm -rf "$dl"
    echo "$kver"
}

main() {
    local t0=$SECONDS
    install_packages
    install_mkosi
    [[ -x "$SYSTEMD_CRYPTSETUP" ]] || die "$SYSTEMD_CRYPTSETUP is missing: which package ships it now?"
    local kver
    kver="$(install_guest_kernel)"
    log "host ready in $((SECONDS - t0)) s; guest kernel $kver"
    echo "$kver"
}

main "$@"
