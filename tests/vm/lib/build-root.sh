#!/bin/bash
# Build the guest's real root filesystem: Debian bookworm from debootstrap,
# with the metaltest report service and hooks from tests/vm/guest/.
#
#   tests/vm/lib/build-root.sh
#
# Outputs in $CACHE/root/ (paths printed on stdout, one a line):
#   root.squashfs  zstd squashfs, what metalroot fetches/mounts as the image
#   root.ext4      sparse 2 GiB ext4 image (label METALTEST) of the same
#                  tree, for plain `root=LABEL=METALTEST` boots
#
# Caching, in two levels so that editing a guest script costs seconds:
#   tree/  the debootstrap tree; rebuilt when its package list or build
#          code changes (tree.stamp)
#   the images; rebuilt when the tree, the image code, the guest kernel
#          (its modules go into the root) or tests/vm/guest/** changes
#          (images.stamp)
set -euo pipefail

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/mirror.sh"

[[ $EUID -eq 0 ]] || die "build-root.sh must run as root (debootstrap, chroot)"

SUITE=bookworm
# The host's own mirror, or METALTEST_MIRROR (mirror.sh). Not part of the
# tree stamp: another mirror of the same suite gives the same tree.
MIRROR="$(apt_mirror "$SUITE")"
# minbase + what the scenarios inspect or need at runtime. Small on purpose:
# every MiB is decompressed by an emulated CPU. open-iscsi: the root's iscsid
# takes over the initrd's sessions (iscsi-chap cuts the connection after
# switch-root).
INCLUDE=systemd,systemd-sysv,udev,mdadm,lvm2,xfsprogs,util-linux,iproute2,kmod,open-iscsi
ROOT_LABEL=METALTEST
EXT4_SIZE=2G

OUT="$CACHE/root"
TREE="$OUT/tree"
GUEST="$VM_DIR/guest"
KVER="$(guest_kver)"

# Kernel modules copied into the root: a subset, no GPU, sound, media,
# wireless, and no KVM (udev would load it for -cpu max's SVM flag, slowly).
# No floppy and no libata either: QEMU's board has a floppy controller and a
# PIIX IDE controller with nothing on them, and probing them held the only
# vCPU for 3-6 s of every boot, right when the report starts.
MODULE_DIRS=(
    kernel/arch/x86/crypto kernel/arch/x86/events kernel/block kernel/crypto kernel/fs kernel/lib kernel/mm
    kernel/net kernel/virt
    kernel/drivers/md kernel/drivers/block/loop.ko kernel/drivers/block/virtio_blk.ko
    kernel/drivers/block/zram kernel/drivers/scsi
    kernel/drivers/nvme kernel/drivers/virtio kernel/drivers/usb/host
    kernel/drivers/usb/storage kernel/drivers/usb/common
    kernel/drivers/usb/core kernel/drivers/cdrom
    kernel/drivers/char kernel/drivers/net/virtio_net.ko
    kernel/drivers/net/net_failover.ko kernel/drivers/firmware
)

# The stamps hash the code and settings of each stage (declare -f prints a
# function's source), not this whole file: editing the image stage or a
# comment must not cost a 90 s debootstrap.
tree_stamp() {
    {
        echo "$SUITE $INCLUDE"
        declare -f build_tree
    } | sha256sum | cut -d' ' -f1
}

images_stamp() {
    {
        cat "$OUT/tree.stamp"
        echo "$ROOT_LABEL $EXT4_SIZE $KVER ${MODULE_DIRS[*]}"
        declare -f build_images configure_tree install_modules install_guest_files
        hash_inputs "$GUEST"
    } | sha256sum | cut -d' ' -f1
}

build_tree() {
    log "debootstrap $SUITE ($INCLUDE)"
    rm -rf "$TREE" "$OUT/tree.stamp"
    mkdir -p "$OUT"
    local t0=$SECONDS
    debootstrap --variant=minbase --include="$INCLUDE" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$SUITE" "$TREE" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 ||
        { tail -n 30 "$OUT/debootstrap.log" >&2; die "debootstrap failed (log: $OUT/debootstrap.log)"; }
    log "debootstrap done in $((SECONDS - t0)) s"

    # Less to pack.
    rm -rf "$TREE"/var/cache/apt/archives/*.deb "$TREE"/var/lib/apt/lists/* \
        "$TREE"/usr/share/doc/* "$TREE"/usr/share/man/* "$TREE"/usr/share/locale/*
    tree_stamp >"$OUT/tree.stamp"
}

# Settings of the booted test system (idempotent; image stage, so changing
# them does not re-run debootstrap).
configure_tree() {
    # Identity: no machine-id, so every boot gets a fresh transient one (and
    # a read-only root works); firstboot must never prompt on the console.
    : >"$TREE/etc/machine-id"
    rm -f "$TREE/var/lib/dbus/machine-id"
    echo metaltest >"$TREE/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tmetaltest\n' >"$TREE/etc/hosts"
    printf '# metaltest root: mounts come from the initrd\n' >"$TREE/etc/fstab"
    # Timers that could fire during a test, and services that are slow under
    # TCG and useless here (e2scrub_reap and getty-static each took 4-5 s of
    # a 15 s boot). No logins either: nothing logs in to the test root, and
    # the gettys with systemd-user-sessions cost 3 s before multi-user.
    # Nor the units no scenario looks at, which every boot started on its one
    # vCPU at ~0.3 s a process: utmp records, binfmt, the API filesystems
    # nothing here uses (hugepages, mqueue, debugfs, tracefs, fuse, configfs),
    # the static device nodes, modprobe@ (dm_mod and loop are loaded in the
    # initrd already) and LVM's dmeventd monitoring (no mirrors or snapshots).
    local unit
    for unit in systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer \
        e2scrub_all.timer e2scrub_reap.service getty-static.service fstrim.timer \
        mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer \
        getty@.service serial-getty@.service systemd-user-sessions.service \
        systemd-update-utmp.service systemd-update-utmp-runlevel.service \
        systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
        dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount \
        sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
        kmod-static-nodes.service modprobe@.service lvm2-monitor.service; do
        ln -sf /dev/null "$TREE/etc/systemd/system/$unit"
    done
    # Only the generators the scenarios rely on: debug (systemd.mask= on the
    # command line), fstab (what the hand-over adds) and run. systemd kills
    # its generators after 90 s: in iscsi-luks-lvm, where the root is read
    # through squashfs, LVM, LUKS and iSCSI, the twelve of them took 77-83 s,
    # and a boot that ran past 90 s lost the debug generator's
    # systemd.mask=iscsid.service, so iscsid started, took the session over
    # and the root's I/O died with it (CI, 2026-12-02).
    mkdir -p "$TREE/etc/systemd/system-generators"
    for unit in systemd-gpt-auto-generator systemd-sysv-generator systemd-rc-local-generator \
        systemd-hibernate-resume-generator systemd-integritysetup-generator \
        systemd-veritysetup-generator systemd-system-update-generator \
        systemd-getty-generator systemd-cryptsetup-generator; do
        ln -sf /dev/null "$TREE/etc/systemd/system-generators/$unit"
    done
    # open-iscsi installed but not enabled (Debian enables iscsid.socket and
    # open-iscsi.service): the root's iscsid must run because metalroot's
    # hand-over enabled it, and the other boots pay nothing for it.
    find "$TREE/etc/systemd/system" -path '*.wants/*' \( -name iscsid.socket -o -name open-iscsi.service \) -delete
    # metaltest.no-iscsid on the command line keeps the root's iscsid from
    # starting (iscsi-luks-lvm). A condition PID 1 reads from /proc/cmdline,
    # not systemd.mask=: that one needs the debug generator, which systemd
    # kills when the generators run past 90 s, as they did there under load
    # (104 s in the clean run of 2026-12-03: iscsid started, took the
    # session over, and the root's I/O died).
    mkdir -p "$TREE/etc/systemd/system/iscsid.service.d"
    printf '[Unit]\nConditionKernelCommandLine=!metaltest.no-iscsid\n' \
        >"$TREE/etc/systemd/system/iscsid.service.d/metaltest.conf"
}

# Kernel modules for the guest kernel (replacing any previous copy), so
# that udev and modprobe work after switch-root, as on a real image.
install_modules() {
    local src=/usr/lib/modules/$KVER d
    rm -rf "$TREE/usr/lib/modules"
    local dst="$TREE/usr/lib/modules/$KVER"
    mkdir -p "$dst"
    cp -a "$src"/modules.order "$src"/modules.builtin* "$dst"/
    for d in "${MODULE_DIRS[@]}"; do
        [[ -e "$src/$d" ]] || continue
        mkdir -p "$dst/$(dirname "$d")"
        cp -a "$src/$d" "$dst/$(dirname "$d")/"
    done
    depmod -b "$TREE" "$KVER"
}

# Copy tests/vm/guest into the tree (replacing any previous copy).
install_guest_files() {
    local lib="$TREE/usr/local/lib/metaltest"
    rm -rf "$lib"
    mkdir -p "$lib/hooks" "$TREE/etc/systemd/system/multi-user.target.wants"
    install -m 755 "$GUEST/metaltest-report" "$lib/report"
    cp -a "$GUEST/hooks/." "$lib/hooks/"
    chmod 755 "$lib"/hooks/*
    install -m 644 "$GUEST/metaltest-report.service" "$TREE/etc/systemd/system/"
    ln -sfn ../metaltest-report.service \
        "$TREE/etc/systemd/system/multi-user.target.wants/metaltest-report.service"
    # The flag an SELinux-built image carries: seed 001's hand-over removes
    # it (the iSCSI scenarios check), other boots keep it (the root has no
    # SELinux, so nothing acts on it).
    : >"$TREE/.autorelabel"
}

build_images() {
    configure_tree
    install_modules
    install_guest_files
    local t0=$SECONDS
    rm -f "$OUT/root.squashfs" "$OUT/root.ext4" "$OUT/images.stamp"
    # zstd level 9: 4 s to build instead of 30 s at the default level 15,
    # for 10% more bytes. The ACL warnings (journal directories) are noise.
    mksquashfs "$TREE" "$OUT/root.squashfs.tmp" -comp zstd -Xcompression-level 9 \
        -noappend -quiet -no-progress -wildcards -e 'proc/*' -e 'sys/*' -e 'run/*' \
        2>&1 | { grep -v 'Unrecognised xattr prefix' || true; } >&2
    mv "$OUT/root.squashfs.tmp" "$OUT/root.squashfs"
    log "root.squashfs: $(du -h --apparent-size "$OUT/root.squashfs" | cut -f1) in $((SECONDS - t0)) s"

    t0=$SECONDS
    truncate -s "$EXT4_SIZE" "$OUT/root.ext4.tmp"
    mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$TREE" "$OUT/root.ext4.tmp"
    mv "$OUT/root.ext4.tmp" "$OUT/root.ext4"
    log "root.ext4 ($EXT4_SIZE sparse, $(du -h "$OUT/root.ext4" | cut -f1) used) in $((SECONDS - t0)) s"
}

main() {
    local t0=$SECONDS want
    want="$(tree_stamp)"
    if [[ ! -d "$TREE" || "$(cat "$OUT/tree.stamp" 2>/dev/null)" != "$want" ]]; then
        build_tree
    fi
    want="$(images_stamp)"
    if [[ ! -f "$OUT/root.squashfs" || ! -f "$OUT/root.ext4" ||
        "$(cat "$OUT/images.stamp" 2>/dev/null)" != "$want" ]]; then
        build_images
        echo "$want" >"$OUT/images.stamp"
        log "root built in $((SECONDS - t0)) s"
    fi
    echo "$OUT/root.squashfs"
    echo "$OUT/root.ext4"
}

# Serialize concurrent builds of the same cache (two runs, or a developer
# building by hand during a run).
mkdir -p "$CACHE"
exec 8>"$CACHE/build-root.lock"
flock 8
main "$@"; exit $?
