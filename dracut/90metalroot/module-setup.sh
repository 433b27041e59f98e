#!/bin/bash
# dracut module for metalroot (systemd initrds only).
#
# Installs, from where the metalroot package puts them:
#   /usr/bin/metalroot                                 the step runner
#   $systemdutildir/system-generators/metalroot-generator
#                                                      the same binary (multi-call:
#                                                      run under that name it is
#                                                      the generator), as a symlink
#   metalroot's static units ($systemdsystemunitdir/metalroot*) and their
#   emergency.target.wants link
#   its man pages under /usr/share/man (man7, man8)
#   /etc/metalroot.conf                                if the host has one
#   /etc/metalroot/keys/*.pub                          trusted image keys, if any
#   tpm2_pcrextend and its device TCTI                 if the host has tpm2-tools
#   /usr/bin/metalroot-torrent                         with metalroot_torrent=yes
#                                                      (metal.torrent's swarm, ~6 MB;
#                                                      in a dracut.conf.d file)
#   the storage, network-storage and filesystem tools the steps run
#   the kernel modules those steps need
#
# Use: dracut --add metalroot ... (check() returns 255: never included
# unless asked for).

# dracut sets moddir, initdir, systemdutildir, ... before sourcing this:
# shellcheck disable=SC2154

# Tools every step set may run; dracut fails the build if one is missing.
METALROOT_REQUIRED_TOOLS=(
    mdadm lvm wipefs sgdisk sfdisk partprobe blockdev blkid losetup
    mkfs.xfs mkfs.vfat mkfs.ext4 dmsetup udevadm mount umount
)
# Tools for optional features (iSCSI, multipath, zram, LUKS): installed when
# the host has them.
METALROOT_OPTIONAL_TOOLS=(
    iscsiadm iscsid iscsistart iscsi-iname multipath multipathd kpartx
    zramctl mkswap swapon cryptsetup lsblk findmnt partx e2fsck tune2fs
    xfs_admin fatlabel
)

METALROOT_BIN=/usr/bin/metalroot

# metalroot_generator_ok: the host's generator is the package's symlink to
# /usr/bin/metalroot (in /usr/lib/systemd, where the packages put it, which
# is $systemdutildir or, on a merged /usr, the same directory). Anything
# else (a separate file from an old build, a link elsewhere) is refused by
# name rather than copied or re-linked.
metalroot_generator_ok() {
    local gen="$dracutsysrootdir/usr/lib/systemd/system-generators/metalroot-generator"
    if [[ ! -L "$gen" ]]; then
        derror "metalroot: $gen is missing or not a symlink to $METALROOT_BIN; install the metalroot package"
        return 1
    fi
    if [[ "$(readlink -f "$gen")" != "$(readlink -f "$dracutsysrootdir$METALROOT_BIN")" ]]; then
        derror "metalroot: $gen points to $(readlink -f "$gen"), not to $METALROOT_BIN; reinstall the metalroot package"
        return 1
    fi
}

# called by dracut
check() {
    [[ -x "$dracutsysrootdir$METALROOT_BIN" ]] || {
        derror "metalroot: no $METALROOT_BIN; install the metalroot package"
        return 1
    }
    metalroot_generator_ok || return 1
    require_binaries "${METALROOT_REQUIRED_TOOLS[@]}" || return 1
    return 255
}

# called by dracut
depends() {
    # systemd-initrd: the initrd.target/switch-root machinery metalroot's
    # units order against. systemd-networkd: ip= handling and DHCP for
    # http(s) and iSCSI sources. dm/mdraid/lvm/crypt: device-mapper, md and
    # LVM udev rules and tools, cryptsetup. fs-lib: fsck helpers for mounts.
    echo systemd systemd-initrd systemd-udevd systemd-journald systemd-networkd \
        dm mdraid lvm crypt base fs-lib
    return 0
}

# called by dracut
installkernel() {
    # hostonly='' : always install these, whatever the build host uses.
    # Plain instmods (not -c): a module built into this kernel or absent
    # from it is not an error.
    hostonly='' instmods \
        nvme sd_mod sr_mod virtio_scsi virtio_blk virtio_net virtio_pci \
        usb-storage uas xhci_pci xhci_hcd \
        squashfs overlay loop zram ext4 xfs vfat nls_cp437 nls_iso8859_1 \
        md_mod raid0 raid1 raid10 \
        dm_mod dm_snapshot dm_crypt dm_multipath dm_round_robin \
        iscsi_tcp libiscsi scsi_transport_iscsi iscsi_ibft \
        af_packet crc32c
    # dm-crypt picks its cipher when the LUKS volume opens, in the initrd:
    # without the AES-NI driver there, the root reads through the generic C
    # AES for the whole life of the system (udev loads aesni_intel only in
    # the real root, too late). Absent on other architectures: not an error.
    hostonly='' instmods aesni_intel xts
}

# called by dracut
install() {
    metalroot_generator_ok || return 1
    inst_binary "$METALROOT_BIN"
    # The generator: the same binary under another name (argv[0]).
    mkdir -p "$initdir$systemdutildir/system-generators"
    ln_r "$METALROOT_BIN" "$systemdutildir/system-generators/metalroot-generator"
    # dracut-cmdline must accept root=live: and root=iscsi: (see the hook).
    inst_hook cmdline 90 "$moddir/parse-metalroot.sh"

    # The static units (the package's units/); the generated ones are
    # written at boot. Their wants links are made here as the package's are.
    local unit
    # (Not inst_multiple with the glob: dracut adds $dracutsysrootdir itself.)
    for unit in "$dracutsysrootdir$systemdsystemunitdir"/metalroot*; do
        [[ -f "$unit" ]] && inst_simple "${unit#"$dracutsysrootdir"}"
    done
    if [[ -f "$initdir$systemdsystemunitdir/metalroot-emergency-status.service" ]]; then
        $SYSTEMCTL -q --root "$initdir" add-wants emergency.target metalroot-emergency-status.service
    fi

    [[ -f "$dracutsysrootdir/etc/metalroot.conf" ]] && inst_simple /etc/metalroot.conf
    # metal.torrent's swarm helper: larger than metalroot itself, so only
    # in the initrds of a site that asks for it.
    if [[ ${metalroot_torrent:-} == yes ]]; then
        if [[ ! -x "$dracutsysrootdir/usr/bin/metalroot-torrent" ]]; then
            derror "metalroot: metalroot_torrent=yes but no /usr/bin/metalroot-torrent; install the metalroot package"
            return 1
        fi
        inst_binary /usr/bin/metalroot-torrent
    fi
    # Trusted image keys (metal.verify): a key here makes the fetch refuse
    # any image without a valid signature by one of them.
    local key
    for key in "$dracutsysrootdir"/etc/metalroot/keys/*.pub; do
        [[ -f "$key" ]] && inst_simple "${key#"$dracutsysrootdir"}"
    done

    # Man pages: metalroot(7) (the command line), metalroot(8) and one
    # metalroot-<step>(8) a step, metalroot-generator(8). Nothing needs
    # man(1): `metalroot help` and `metalroot status` work without; the
    # pages are there to read (zcat them when the package compressed them).
    local page
    for page in "$dracutsysrootdir"/usr/share/man/man7/metalroot.7* \
        "$dracutsysrootdir"/usr/share/man/man8/metalroot*.8*; do
        [[ -f "$page" ]] && inst_simple "${page#"$dracutsysrootdir"}"
    done

    inst_multiple "${METALROOT_REQUIRED_TOOLS[@]}"
    inst_multiple -o "${METALROOT_OPTIONAL_TOOLS[@]}"
    inst_multiple -o "$systemdutildir/systemd-cryptsetup"
    # multipath and multipathd dlopen their path checkers and prioritizers
    # (libchecktur.so, libprioconst.so, ...) from their multipath_dir:
    # inst_multiple cannot see them, and inst_libdir_file only searches
    # $libdirs, which lacks /lib when the loader is in /lib64 (Debian).
    local mpdir
    for mpdir in /lib/multipath /usr/lib/multipath /lib64/multipath /usr/lib64/multipath; do
        if [[ -d "$dracutsysrootdir$mpdir" ]]; then
            inst_multiple "$mpdir"/*.so
            break
        fi
    done
    # Measured boot (metal.tpm-pcr): tpm2_pcrextend, and the TCTI it
    # dlopens for /dev/tpmrm0, which inst_multiple cannot see.
    if find_binary tpm2_pcrextend >/dev/null; then
        inst_multiple tpm2_pcrextend
        inst_libdir_file "libtss2-tcti-device.so*"
    fi
    # The CA bundle, for https sources.
    inst_multiple -o /etc/ssl/certs/ca-certificates.crt
    # iscsid/iscsiadm look for their config here.
    inst_multiple -o /etc/iscsi/iscsid.conf
    # The initiator name is one machine's identity: only a host-only initrd
    # may carry the build host's. A shared initrd would give every node the
    # same name (a target then drops one node's session for the other's);
    # there the name comes from rd.iscsi.initiator, the iBFT, or is generated
    # at boot and kept in the real root.
    if [[ $hostonly ]]; then
        inst_multiple -o /etc/iscsi/initiatorname.iscsi
    fi
}
