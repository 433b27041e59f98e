# shellcheck shell=bash
# Drop-in for dracut-metal-mdsquash fleets (issue 16): seed 000's command
# lines with the values mdsquash fleets run with, the re-pave that
# `metal.no-wipe=0` means there, metalroot's opt-in `metal.keep-layout=1`,
# and the same disks chosen on every boot. Uses 30-disks.sh's DISK_SIZE,
# DISKS_BASE and DISKS_CMDLINE.

# md_member_serials: the serials of the disks that carry an md array in the
# latest boot's report, sorted, one line.
md_member_serials() {
    jq -r '.blockdevices[] | select(.type == "disk")
        | select([.. | objects | select((.type // "") | test("^raid"))] | length > 0)
        | .serial' "$RESULTS/lsblk.json" | sort | tr '\n' ' ' | sed 's/ $//'
}

# One boot with the values mdsquash fleets boot with that metalroot once
# refused: an out-of-range wipe delay (mdsquash: the default, 5 s), a
# minimum disk size of 0, a boolean dracut reads as true, an unknown
# metal.* name. The boot paves two fresh disks and reaches the root; each
# value gets its warning. (This boot is also the fresh-pave check that was
# disks-fresh: the mkosi initrd, four mirrored arrays, the hand-over.)
scenario_dropin_lenient() {
    publish_image
    vm_add_blank_pair FRESH
    boot_reaches_root --initrd mkosi --append "$DISKS_CMDLINE metal.wipe-delay=1 metal.min-disk-size=0 metal.ipv4=enabled metal.fancy-new-thing=1 metaltest.hook=pave-facts"
    assert_journal_contains 'warning: metal.wipe-delay="1": must be between 2 and 60; using 5, as dracut-metal-mdsquash does'
    assert_journal_contains 'warning: metal.ipv4="enabled": dracut reads any value but 0, no and off as true'
    assert_journal_contains 'warning: metal.fancy-new-thing="1": unknown metal.\* parameter, ignored'
    assert_journal_contains "power this node off within the next \[5\] seconds"
    assert_journal_contains "ignores USB devices and block devices less then or equal to \[0\] bytes"
    assert_journal_not_contains "metalroot-cmdline-error"
    # The fresh pave.
    assert_eq "$(grep -c '^md.* : active raid1' "$RESULTS/mdstat")" 3 "BOOT, SQFS and ROOT arrays mirrored (raid1)"
    assert_eq "$(grep -c '^md.* : active raid0' "$RESULTS/mdstat")" 1 "AUX as a stripe"
    assert_eq "$(grep -c '\[UU\]' "$RESULTS/mdstat")" 3 "each mirror on both disks"
    assert_file_contains vgs "metalvg0"
    assert_report_mount LiveOS_rootfs / overlay
    assert_journal_contains "Found the following disks for the main RAID array \(qty. \[2\]\): \[sd[ab] sd[ab]\]"
    # Hand-over: the booted root knows the arrays by name (AUX holds metalvg0).
    assert_eq "$(grep -cE '^ARRAY /dev/md/(BOOT|SQFS|ROOT|AUX) ' "$RESULTS/mdadm.conf")" 4 "the four arrays in the real root's mdadm.conf"
    assert_file_contains fstab "^LABEL=BOOTRAID /metal/recovery vfat"
    # The pave compared with mdsquash's (docs/cmdline.md, section 11): its
    # parted boundaries (2048s, 500 MB, 25 GB, 175 GB, 325 GB on the nearest
    # MiB) in 512-byte sectors on both disks ...
    local f
    for f in FRESH-A FRESH-B; do
        assert_eq "$(tr '\n' ' ' <"$RESULTS/pave/partitions-$f.txt")" \
            "1 2048 974848 2 976896 47851520 3 48828416 292968448 4 341796864 292968448 " \
            "$f: partitions (number, first sector, sectors) where mdsquash's parted puts them"
    done
    # ... BOOT with 0.90 metadata at seed 000's size, AUX a stripe with
    # 512K chunks, the others raid1 with 1.2 metadata ...
    assert_file_contains pave/mdadm-detail.txt "Version : 0.90"
    # The array sizes of seed 000's log ("mdadm: size set to ...K").
    local k
    for k in 487360 23908352 146352128; do
        assert_file_contains pave/mdadm-detail.txt "Array Size : $k "
    done
    assert_eq "$(grep -c 'Raid Level : raid0' "$RESULTS/pave/mdadm-detail.txt")" 1 "one stripe (AUX)"
    assert_eq "$(grep -c 'Raid Level : raid1' "$RESULTS/pave/mdadm-detail.txt")" 3 "three mirrors"
    assert_eq "$(grep -c 'Version : 1.2' "$RESULTS/pave/mdadm-detail.txt")" 3 "1.2 metadata on SQFS, ROOT, AUX"
    assert_file_contains pave/mdadm-detail.txt "Chunk Size : 512K"
    # ... and metalvg0 over both disks' AUX partitions (> 1.9 x one).
    check "metalvg0 spans both AUX partitions ($(cat "$RESULTS/pave/vgs.txt" 2>/dev/null))" \
        bash -c "awk '\$1 == \"metalvg0\" && \$2 > 1.9 * 292968448 * 512 { ok = 1 } END { exit !ok }' '$RESULTS/pave/vgs.txt'"
}

# A paved node booted again with metal.no-wipe=0 is wiped and paved again,
# as CSM re-installs a node with mdsquash; metal.keep-layout=1 keeps it.
# Three equal disks, attached in another order on boot 2: the same two are
# taken both times (by serial, not by kernel name).
#   boot 1: pave (metal.no-wipe=0 written out), marker written;
#   boot 2: disks in reverse order, metal.no-wipe=0: wiped, paved again, the
#           image fetched again, the marker gone; a new marker written;
#   boot 3: metal.keep-layout=1: nothing wiped, the image unchanged on the
#           server is not fetched again, the marker kept;
#   boot 4: metal.keep-layout=1 and a new image on the server: booted.
scenario_dropin_repave() {
    publish_image
    local size a b c
    size=$(stat -c %s "$WWW/squashfs.img")
    local cmd="metal.server=http://10.0.2.2:8081/ $DISKS_BASE"
    a="$(vm_disk a "$DISK_SIZE")"
    b="$(vm_disk b "$DISK_SIZE")"
    c="$(vm_disk c "$DISK_SIZE")"
    vm_add_scsi "$a" REPAVE-A
    vm_add_scsi "$b" REPAVE-B
    vm_add_scsi "$c" REPAVE-C
    boot_reaches_root --append "$cmd metal.no-wipe=0 metaltest.hook=write-marker"
    assert_journal_contains "pave: metal.no-wipe=0: the disks are wiped and paved on every boot"
    assert_eq "$(md_member_serials)" "REPAVE-A REPAVE-B" "boot 1 paved the two disks first by serial"
    local uuids1
    uuids1="$(grep -o 'UUID="[^"]*"' "$RESULTS/blkid" | sort | tr '\n' ' ')"

    vm_detach_disks
    vm_add_scsi "$c" REPAVE-C
    vm_add_scsi "$b" REPAVE-B
    vm_add_scsi "$a" REPAVE-A
    fault_reset
    boot_reaches_root --append "$cmd metal.no-wipe=0 metaltest.hook=read-marker metaltest.hook=write-marker"
    assert_journal_contains "an existing layout; metal.no-wipe=0 wipes and paves it again, as dracut-metal-mdsquash does"
    assert_journal_contains "Warning: local storage device wipe commencing"
    assert_file_exists marker/NONE
    assert_eq "$(md_member_serials)" "REPAVE-A REPAVE-B" "boot 2 (disks attached in reverse) paved the same two disks"
    local uuids2
    uuids2="$(grep -o 'UUID="[^"]*"' "$RESULTS/blkid" | sort | tr '\n' ' ')"
    check "boot 2 made new arrays and filesystems" test "$uuids1" != "$uuids2"
    local served
    served=$(fault_stats | jq -r .body_bytes)
    check "boot 2 fetched the image again ($served of $size+ bytes)" test "$served" -ge "$size"

    fault_reset
    boot_reaches_root --append "$cmd metal.keep-layout=1 metaltest.hook=read-marker metaltest.hook=write-marker"
    assert_journal_contains "pave: metal.keep-layout=1 \(metalroot's own, opt-in\)"
    assert_journal_contains "reusing the existing layout"
    assert_journal_contains "an existing layout, nothing is wiped \(metal.keep-layout=1\)"
    assert_journal_not_contains "Warning: local storage device wipe commencing"
    assert_journal_contains "unchanged on the server"
    assert_file_exists marker/marker
    assert_marker_boots 1 "boot 2's marker survived in the overlay"
    assert_eq "$(grep -o 'UUID="[^"]*"' "$RESULTS/blkid" | sort | tr '\n' ' ')" "$uuids2" "same arrays and filesystems as boot 2"
    served=$(fault_stats | jq -r .body_bytes)
    check "boot 3 fetched <= 1 MiB ($served bytes served)" test "$served" -le $((1024 * 1024))

    # A new image on the server: the root gains a hook that says so. (Rebuilt
    # whole: appending to a squashfs renames clashing directories.)
    local tree="$RUN_DIR/newroot"
    unsquashfs -q -n -d "$tree" "$ROOT_SQUASHFS" >/dev/null
    mkdir -p "$tree/usr/local/lib/metaltest/hooks"
    printf '#!/bin/sh\necho v2 >"$1/image-version"\n' >"$tree/usr/local/lib/metaltest/hooks/image-version"
    chmod +x "$tree/usr/local/lib/metaltest/hooks/image-version"
    mksquashfs "$tree" "$WWW/squashfs.img.new" -noappend -comp zstd -no-progress -quiet >/dev/null
    rm -rf "$tree"
    mv "$WWW/squashfs.img.new" "$WWW/squashfs.img"
    (cd "$WWW" && sha256sum squashfs.img >squashfs.img.sha256)
    size=$(stat -c %s "$WWW/squashfs.img")
    fault_reset
    boot_reaches_root --append "$cmd metal.keep-layout=1 metaltest.hook=read-marker metaltest.hook=image-version"
    assert_file_contains image-version "^v2$"
    assert_journal_contains "sha256 verified"
    assert_file_exists marker/marker
    served=$(fault_stats | jq -r .body_bytes)
    check "boot 4 fetched the new image ($served of $size+ bytes)" test "$served" -ge "$size"
}

# Seed 000's minimal command line, verbatim: `metal.server=<URI>
# root=live:LABEL=SQFSRAID`, nothing added (no ip=, no rd.neednet=1, the
# default 5 s wipe delay). metalroot brings DHCP up itself, paves the two
# fresh disks and boots the image with its persistent overlay.
scenario_dropin_seed000_lines() {
    publish_image
    vm_add_blank_pair SEED
    boot_reaches_root --append "metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID"
    assert_file_not_contains cmdline "ip=|rd.neednet"
    assert_journal_contains "no ip= on the command line: DHCP on every Ethernet link"
    assert_journal_contains "Finished metalroot-dhcp.service"
    assert_journal_contains "fetched http://10.0.2.2:8080/squashfs.img"
    assert_journal_contains "power this node off within the next \[5\] seconds"
    assert_report_mount LiveOS_rootfs / overlay
    check "the booted root's overlay upper is on ROOTRAID" \
        bash -c "grep -q 'LABEL=\"ROOTRAID\"' '$RESULTS/blkid'"
}
