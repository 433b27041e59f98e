# shellcheck shell=bash
# Assembling the root (issue 6): persistent and RAM upper layers, boot to
# RAM in seed 002's three modes, a refused RAM copy, and a disk prepared in
# dracut dmsquash-live's overlay layout. Each checks from inside the Debian
# root that switch-root happened into what was asked.

# live_medium NAME LABEL [SQUASHFS]: an ext4 disk holding LiveOS/squashfs.img
# (the Debian root's squashfs unless another is given).
live_medium() {
    local img="$RUN_DIR/disks/$1.img" tree="$RUN_DIR/$1-tree"
    mkdir -p "$tree/LiveOS" "$RUN_DIR/disks"
    cp "${3:-$ROOT_SQUASHFS}" "$tree/LiveOS/squashfs.img"
    truncate -s 2G "$img"
    mkfs.ext4 -q -F -L "$2" -d "$tree" "$img"
    rm -rf "$tree"
    echo "$img"
}

# A tmpfs upper, and rd.live.ram=1: the image is copied to RAM first.
scenario_root_tmpfs() {
    vm_add_scsi "$(live_medium live LIVEMEDIA)" ROOT-LIVE
    boot_reaches_root --append "root=live:LABEL=LIVEMEDIA rd.live.image rd.live.ram=1 rd.live.overlay.overlayfs=1 rd.live.overlay.size=512"
    assert_report_mount LiveOS_rootfs / overlay
    assert_report_mount tmpfs /run/initramfs/tmpfs-overlay tmpfs
    check "tmpfs upper is 512 MiB (rd.live.overlay.size)" \
        bash -c "grep -q 'size=524288k' <<<\"\$(jq -r '.. | objects | select(.target? == \"/run/initramfs/tmpfs-overlay\") | .options' '$RESULTS/findmnt.json')\""
    assert_report_mount "~^/dev/sd" /run/initramfs/live ext4
    assert_journal_contains "copied /run/initramfs/live/LiveOS/squashfs.img to /run/initramfs/squashed.img \([0-9]+ bytes\)"
}

# A zram upper, under dracut's livenet form: root=live:<URL> is fetched into
# RAM by the fetch step, then mounted.
scenario_root_zram() {
    publish_image
    boot_reaches_root --append "root=live:http://10.0.2.2:8080/squashfs.img rd.live.image metal.overlay=zram metal.zram-size=512M metal.zram-fs=xfs ip=dhcp rd.neednet=1"
    assert_journal_contains "Finished metalroot-fetch.service"
    assert_report_mount "~^/dev/loop" /run/rootfsbase squashfs
    assert_report_mount LiveOS_rootfs / overlay
    assert_report_mount "~^/dev/zram" /run/initramfs/zram xfs
    assert_journal_contains "zram upper layer /dev/zram[0-9]+ \(536870912 bytes, zstd, xfs\)"
}

# Boot 1 writes a marker into the persistent overlay. Boot 2, with
# rd.live.overlay.readonly=1, finds it in the read-only middle layer and
# writes again, into a tmpfs. Boot 3 finds only boot 1's line: the read-only
# boot changed nothing. Boot 4 with rd.live.overlay.reset=1 starts empty.
scenario_root_persist_root_reset() {
    local persist="$RUN_DIR/disks/persist.img"
    vm_add_scsi "$(live_medium live LIVEMEDIA)" ROOT-LIVE
    truncate -s 4G "$persist"
    mkfs.ext4 -q -F -L PERSIST "$persist"
    vm_add_scsi "$persist" ROOT-PERSIST
    local cmd="root=live:LABEL=LIVEMEDIA rd.live.image rd.live.overlay=LABEL=PERSIST rd.live.overlay.overlayfs=1"
    boot_reaches_root --append "$cmd metaltest.hook=write-marker"
    assert_report_mount "~^/dev/sd" /run/initramfs/overlayfs ext4
    boot_reaches_root --append "$cmd rd.live.overlay.readonly=1 metaltest.hook=read-marker metaltest.hook=write-marker"
    assert_marker_boots 1 "root-persist: boot 1's file is there in boot 2"
    check "readonly: the persistent upper is a lower layer" \
        bash -c "jq -r '.. | objects | select(.target? == \"/\") | .options' '$RESULTS/findmnt.json' | grep -q 'lowerdir=/run/initramfs/overlayfs/'"
    assert_report_mount tmpfs /run/initramfs/tmpfs-overlay tmpfs
    boot_reaches_root --append "$cmd metaltest.hook=read-marker"
    assert_marker_boots 1 "readonly: boot 2's write did not reach the persistent overlay"
    boot_with_reset "$cmd" "Resetting the OverlayFS overlay directory"
}

# boot_with_reset CMDLINE MESSAGE: a boot with rd.live.overlay.reset=1 logs
# MESSAGE and starts from an empty overlay (no marker).
boot_with_reset() {
    boot_reaches_root --append "$1 rd.live.overlay.reset=1 metaltest.hook=read-marker"
    assert_journal_contains "$2"
    assert_file_exists marker/NONE
}

# A disk laid out as dracut's dmsquash-live (and mdsquash) leave it: the
# upper directory LiveOS/overlay-<label>-<uuid> of the live medium, ovlwork
# beside it. metalroot must use that upper, not start a new one.
scenario_root_existing_mdsquash_layout() {
    local uuid=0f5a4b5c-1111-4222-8333-944455556666
    local live="$RUN_DIR/disks/sqfs.img" oval="$RUN_DIR/disks/oval.img"
    mkdir -p "$RUN_DIR/disks" "$RUN_DIR/sqfs/LiveOS" "$RUN_DIR/oval/LiveOS/ovlwork"
    cp "$ROOT_SQUASHFS" "$RUN_DIR/sqfs/LiveOS/squashfs.img"
    truncate -s 30G "$live"
    mkfs.ext4 -q -F -L SQFSRAID -U "$uuid" -d "$RUN_DIR/sqfs" "$live"
    local upper="$RUN_DIR/oval/LiveOS/overlay-SQFSRAID-$uuid"
    mkdir -p "$upper/var/lib/metaltest"
    echo prepared-by-dracut-layout >"$upper/var/lib/metaltest/boots"
    truncate -s 30G "$oval"
    mkfs.ext4 -q -F -L ROOTRAID -d "$RUN_DIR/oval" "$oval"
    vm_add_scsi "$live" EXIST-SQFS
    vm_add_scsi "$oval" EXIST-ROOT
    boot_reaches_root --append "root=live:LABEL=SQFSRAID rd.live.image rd.live.overlay=LABEL=ROOTRAID rd.live.overlay.overlayfs=1 metaltest.hook=read-marker"
    assert_file_contains marker/boots "^prepared-by-dracut-layout$"
    assert_journal_contains "persistent overlay at /run/initramfs/overlayfs/LiveOS/overlay-SQFSRAID-$uuid"
}

scenario_root_ram_copy() {
    publish_image
    boot_reaches_root --append "metal.server=http://10.0.2.2:8080/ metal.ram=copy ip=dhcp rd.neednet=1"
    assert_report_mount tmpfs / tmpfs
    assert_journal_contains "root copied into a tmpfs"
}

scenario_root_ram_squashfs() {
    publish_image
    boot_reaches_root --append "metal.server=http://10.0.2.2:8080/ metal.ram=squashfs ip=dhcp rd.neednet=1"
    assert_report_mount "~^/dev/loop" / squashfs
}

scenario_root_ram_overlay() {
    publish_image
    boot_reaches_root --append "metal.server=http://10.0.2.2:8080/ metal.ram=overlay ip=dhcp rd.neednet=1"
    assert_report_mount LiveOS_rootfs / overlay
    assert_report_mount "~^/dev/loop" /run/rootfsbase squashfs
    assert_report_mount tmpfs /run/initramfs/tmpfs-overlay tmpfs
}

# Too little memory to copy the tree into RAM: a clear error naming the
# sizes, the boot stops in the emergency shell, and nothing is OOM-killed.
scenario_root_low_mem() {
    publish_image
    vm_boot --mem 640 --timeout 240 --append "metal.server=http://10.0.2.2:8080/ metal.ram=copy ip=dhcp rd.neednet=1" || true
    assert_emergency
    assert_journal_contains "metal.ram=copy needs [0-9]+ bytes of RAM but only [0-9]+ bytes are available"
    assert_journal_not_contains "Out of memory|oom-kill"
}

# A squashfs that carries LiveOS/rootfs.img (the ext4 Debian root) instead of
# a root tree, as oVirt Node and older Fedora live media are built. Made once
# and kept beside the root images (rebuilt when root.ext4 is newer).
fsimage_squashfs() {
    local out tree="$RUN_DIR/fsimage-tree"
    out="$(dirname "$ROOT_EXT4")/rootfs-img.squashfs"
    if [[ ! -s $out || $out -ot $ROOT_EXT4 ]]; then
        mkdir -p "$tree/LiveOS"
        cp --sparse=always "$ROOT_EXT4" "$tree/LiveOS/rootfs.img"
        mksquashfs "$tree" "$out.tmp" -comp zstd -noappend -quiet >/dev/null
        mv "$out.tmp" "$out"
        rm -rf "$tree"
    fi
    echo "$out"
}

# Seed 003's recipe, to the letter: a 500M disk with ext4 holding a 300 MiB
# file of zeros, persist-hda.img, and rd.live.overlay=/dev/sdb:/persist-hda.img.
# The image carries LiveOS/rootfs.img, so the root is dracut's device-mapper
# snapshot and the file is its copy-on-write store. Boot 1 writes a marker,
# boot 2 finds it, boot 3 with rd.live.overlay.reset=1 starts empty.
scenario_root_ovirt_file_overlay() {
    local hdb="$RUN_DIR/disks/hdb.raw" tree="$RUN_DIR/hdb-tree"
    # The live medium is a virtio disk, and hdb.raw is both SCSI disks (the
    # recipe's sda is an unused install disk): the guest probes SCSI disks
    # asynchronously and once named them in the other order, so whichever
    # it calls sdb must hold the file.
    vm_add_virtio "$(live_medium live oVirt-Node "$(fsimage_squashfs)")" OVIRT-LIVE
    mkdir -p "$tree"
    dd if=/dev/zero bs=1M count=300 of="$tree/persist-hda.img" status=none
    truncate -s 500M "$hdb"
    mkfs.ext4 -q -F -d "$tree" "$hdb"
    rm -rf "$tree"
    vm_add_scsi_twice "$hdb" OVIRT-HDB
    local cmd="root=live:LABEL=oVirt-Node rd.live.image rd.live.overlay=/dev/sdb:/persist-hda.img"
    boot_reaches_root --append "$cmd metaltest.hook=write-marker"
    assert_report_mount /dev/mapper/live-rw / ext4
    assert_report_mount "~^/dev/sdb" /run/initramfs/overlayfs ext4
    assert_journal_contains "persistent snapshot store /run/initramfs/overlayfs/persist-hda.img on /dev/sdb"
    boot_reaches_root --append "$cmd metaltest.hook=read-marker"
    assert_marker_boots 1 "root-ovirt-file-overlay: boot 1's file is there in boot 2"
    boot_with_reset "$cmd" "Resetting the device-mapper overlay /run/initramfs/overlayfs/persist-hda.img"
}

# The device-mapper form without a persistent overlay: the snapshot's store
# is a sparse file in a tmpfs of rd.live.overlay.size. Then the same image
# with rd.live.overlay.overlayfs=1 and oVirt's other form of overlay file, a
# filesystem image holding the upper and work directories: OverlayFS over
# the mounted rootfs.img.
scenario_root_snap() {
    local tree="$RUN_DIR/persist-tree" persist="$RUN_DIR/disks/persist.img"
    vm_add_scsi "$(live_medium live LIVESNAP "$(fsimage_squashfs)")" SNAP-LIVE
    mkdir -p "$tree"
    truncate -s 256M "$tree/persist-fs.img"
    mkfs.ext4 -q -F "$tree/persist-fs.img"
    truncate -s 1G "$persist"
    mkfs.ext4 -q -F -L SNAPPERSIST -d "$tree" "$persist"
    rm -rf "$tree"
    vm_add_scsi "$persist" SNAP-PERSIST
    boot_reaches_root --append "root=live:LABEL=LIVESNAP rd.live.image rd.live.overlay.size=256"
    assert_report_mount /dev/mapper/live-rw / ext4
    assert_report_mount "~^/dev/loop" /run/initramfs/squashfs squashfs
    assert_journal_contains "root is /dev/mapper/live-rw: a snapshot of /run/initramfs/squashfs/LiveOS/rootfs.img"
    boot_reaches_root --append "root=live:LABEL=LIVESNAP rd.live.image rd.live.overlay.overlayfs=1 rd.live.overlay=LABEL=SNAPPERSIST:/persist-fs.img"
    assert_report_mount LiveOS_rootfs / overlay
    assert_report_mount "~^/dev/loop" /run/rootfsbase ext4
    assert_report_mount "~^/dev/loop" /run/initramfs/overlay-image ext4
    assert_journal_contains "persistent overlay at /run/initramfs/overlay-image/overlayfs"
}
