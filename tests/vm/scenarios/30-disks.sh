# shellcheck shell=bash
# Local disks (issue 4): guarded wipe, seed 000's layout, reuse on reboot,
# degraded arrays, dry run. Disks of the seed's real sizes (400 GB sparse
# files) and its default arrays (0.5/25/150/150 GB); only the wipe delay is
# shortened to its 2 s minimum.

DISK_SIZE=400G
DISKS_BASE="root=live:LABEL=SQFSRAID rd.live.overlay=LABEL=ROOTRAID rd.live.overlay.overlayfs=1 metal.wipe-delay=2 ip=dhcp rd.neednet=1"
DISKS_CMDLINE="metal.server=http://10.0.2.2:8080/ $DISKS_BASE"

# disk_fingerprint FILE: the first 16 MiB's hash and the allocated bytes: a
# wipe, partitioning or mkfs changes one of them.
disk_fingerprint() {
    printf '%s %s\n' "$(head -c 16M "$1" | sha256sum | cut -d' ' -f1)" "$(du -B1 "$1" | cut -f1)"
}

# vm_add_blank_pair PREFIX: two new blank disks of DISK_SIZE, a and b,
# attached with the serials PREFIX-A and PREFIX-B.
vm_add_blank_pair() {
    vm_add_scsi "$(vm_disk a "$DISK_SIZE")" "$1-A"
    vm_add_scsi "$(vm_disk b "$DISK_SIZE")" "$1-B"
}

# A disk with a filesystem on it, as a stand-in for data that must survive.
data_disk() { # NAME SIZE LABEL
    local img
    img="$(vm_disk "$1" "$2")"
    mkfs.ext4 -q -F -L "$3" "$img" >/dev/null
    echo "$img"
}

# attach_data_pair X Y SIZE LABEL SERIAL: disks X and Y of SIZE holding
# data (labels LABEL-X, LABEL-Y; serials SERIAL-X, SERIAL-Y); DATA_PAIR is
# their paths and DATA_BEFORE their fingerprints, for data_pair_unchanged.
attach_data_pair() {
    local x y
    x="$(data_disk "$1" "$3" "$4-${1^^}")"
    y="$(data_disk "$2" "$3" "$4-${2^^}")"
    DATA_PAIR=("$x" "$y")
    DATA_BEFORE="$(disk_fingerprint "$x") $(disk_fingerprint "$y")"
    vm_add_scsi "$x" "$5-${1^^}"
    vm_add_scsi "$y" "$5-${2^^}"
}

# data_pair_unchanged WHAT: the check that attach_data_pair's disks are as
# they were.
data_pair_unchanged() {
    assert_eq "$(disk_fingerprint "${DATA_PAIR[0]}") $(disk_fingerprint "${DATA_PAIR[1]}")" "$DATA_BEFORE" "$1"
}

scenario_disks_degraded() {
    publish_image
    local a b
    a="$(vm_disk a "$DISK_SIZE")"
    b="$(vm_disk b "$DISK_SIZE")"
    vm_add_scsi "$a" DEGRADED-A
    vm_add_scsi "$b" DEGRADED-B
    boot_reaches_root --append "$DISKS_CMDLINE metaltest.hook=write-marker"
    # Boot 2: disk B is gone.
    vm_detach_disks
    vm_add_scsi "$a" DEGRADED-A
    # metal.keep-layout=1: with metal.no-wipe=0 alone a paved node is paved
    # again (dracut-metal-mdsquash's behaviour), which one disk cannot hold.
    boot_reaches_root --append "$DISKS_CMDLINE metal.keep-layout=1 metaltest.hook=read-marker"
    assert_journal_contains "reusing the existing layout"
    assert_mdstat_contains "\[2/1\]"
    assert_report_mount LiveOS_rootfs / overlay
    assert_marker_boots 1 "boot 1's data kept on the degraded arrays"
}

scenario_disks_single() {
    publish_image
    vm_add_scsi "$(vm_disk a "$DISK_SIZE")" SINGLE-A
    boot_reaches_root --append "metal.disks=1 $DISKS_CMDLINE"
    assert_eq "$(grep -c '^md.* : active raid1' "$RESULTS/mdstat")" 3 "three one-member raid1 arrays"
    assert_eq "$(grep -c '^md.* : active raid0' "$RESULTS/mdstat")" 1 "a one-member AUX stripe"
    assert_mdstat_contains "\[1/1\] \[U\]"
    assert_report_mount LiveOS_rootfs / overlay
}

scenario_disks_dry() {
    publish_image
    attach_data_pair a b "$DISK_SIZE" OLDDATA DRY
    vm_boot --timeout 240 --append "metal.dry-run=1 $DISKS_CMDLINE" || true
    assert_emergency
    assert_journal_contains "would partition /dev/sda"
    assert_journal_contains "would partition /dev/sdb"
    assert_journal_contains "dry run \(metal.dry-run=1\): nothing was wiped"
    assert_journal_contains "metal.dry-run=1"
    data_pair_unchanged "both disks unchanged"
}

scenario_disks_no_wipe() {
    publish_image
    vm_add_blank_pair NOWIPE
    boot_reaches_root --append "metal.no-wipe=1 $DISKS_CMDLINE"
    assert_journal_not_contains "Warning: local storage device wipe commencing"
    assert_eq "$(grep -c '^md.* : active raid[01]' "$RESULTS/mdstat")" 4 "layout built on the blank disks"
    # Boot 2: a disk with data and metal.no-wipe=1 is refused, not paved.
    vm_detach_disks
    attach_data_pair c d "$DISK_SIZE" KEEPME NOWIPE
    vm_boot --timeout 240 --append "metal.no-wipe=1 $DISKS_CMDLINE" || true
    assert_emergency
    assert_journal_contains "metal.no-wipe=1 and /dev/sd[ab] still holds signatures"
    data_pair_unchanged "disks with data untouched"
}

# A USB stick, a small disk and an iSCSI LUN (logged in before the disks are
# chosen) are attached while two good disks are wiped: all three unchanged.
scenario_disks_guards() {
    publish_image
    local usb small lun before
    usb="$(data_disk usb 32G USBDATA)"
    small="$(data_disk small 8G SMALLDATA)"
    lun="$(data_disk lun 40G LUNDATA)"
    before="$(disk_fingerprint "$usb") $(disk_fingerprint "$small") $(disk_fingerprint "$lun")"
    tgt_add_target 1 iqn.2026-11.metaltest:guard "$lun"
    vm_add_scsi "$(vm_disk a "$DISK_SIZE")" GUARD-A
    vm_add_scsi "$small" GUARD-SMALL
    vm_add_nvme "$(vm_disk b "$DISK_SIZE")" GUARD-B
    vm_add_usb "$usb" GUARD-USB
    # The test root has no iscsid: once a TCG stall has tripped the LUN's
    # NOP-Out timeout, nothing recovers its session there. A short
    # replacement timeout then fails its I/O in 5 s instead of stalling the
    # report's probes for the default 120 s (seen: 97 s to 218 s).
    vm_boot --append "$DISKS_CMDLINE netroot=iscsi:10.0.2.2::::iqn.2026-11.metaltest:guard \
rd.iscsi.param=node.session.timeo.replacement_timeout=5" || true
    assert_report
    assert_journal_contains "logged in to iqn.2026-11.metaltest:guard"
    assert_journal_contains "skipped: iSCSI LUN"
    assert_journal_contains "serial \"GUARD-USB\"\): skipped: USB device"
    assert_journal_contains "serial \"GUARD-SMALL\"\): skipped: .* not above metal.min-disk-size"
    assert_journal_contains "targeting the following block devices: \[(/dev/nvme0n1 /dev/sd[a-z]|/dev/sd[a-z] /dev/nvme0n1)\]"
    tgt_del_target 1
    assert_eq "$(disk_fingerprint "$usb") $(disk_fingerprint "$small") $(disk_fingerprint "$lun")" "$before" \
        "USB stick, small disk and iSCSI LUN untouched"
}

# Boot 1 leaves seed 000's arrays and metalvg0 plus a ceph-* volume group on
# the third disk, the one left out of the arrays (the make-ceph-vg hook).
# Boot 2 asks for other labels, so the disks are dirty: the wipe removes
# both VGs, stops and zeroes the arrays.
scenario_disks_dirty() {
    publish_image
    local cmd1="metal.server=http://10.0.2.2:8080/ $DISKS_BASE"
    vm_add_blank_pair DIRTY
    vm_add_scsi "$(vm_disk c "$DISK_SIZE")" DIRTY-CEPH
    boot_reaches_root --append "$cmd1 metaltest.hook=make-ceph-vg"
    assert_file_contains vgs "metalvg0"
    assert_file_contains hooks/make-ceph-vg.log "ceph-metaltest"
    local cmd2="metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFS2 rd.live.overlay=LABEL=ROOT2 rd.live.overlay.overlayfs=1 metal.wipe-delay=2 ip=dhcp rd.neednet=1"
    boot_reaches_root --append "$cmd2"
    assert_journal_contains "removing volume group \[ceph-metaltest\]"
    assert_journal_contains "removing volume group \[metalvg0\]"
    assert_journal_contains "targeting the following RAID\(s\): \[/dev/md"
    # metalvg0 is there again: the new layout's, on the new AUX array.
    assert_file_not_contains vgs "ceph-metaltest"
    check "new labels SQFS2 and ROOT2, old ones gone" \
        bash -c "grep -q 'LABEL=\"SQFS2\"' '$RESULTS/blkid' && grep -q 'LABEL=\"ROOT2\"' '$RESULTS/blkid' && ! grep -q 'LABEL=\"SQFSRAID\"' '$RESULTS/blkid'"
}

# Issue 19: the wipe's preflight. Two disks with data, each too small for
# seed 000's arrays (200 GiB: below mdsquash's 350 GiB array disk, and
# below the 325 GB layout): the wipe step fails before touching anything,
# naming the sizes.
scenario_preflight_small_disks() {
    publish_image
    attach_data_pair a b 200G SMALL SMALL
    vm_boot --append "$DISKS_CMDLINE" || true
    assert_emergency
    assert_journal_contains "preflight failed: metal.disks=2: only 0 eligible disk\(s\) of 375809638400 bytes \(350 GiB"
    assert_journal_contains "preflight failed: /dev/sd[ab] has 214748364800 bytes, below 375809638400: not taken for the arrays"
    assert_journal_contains "preflight failed, nothing was wiped \(3 check\(s\); metal.wipe-anyway=1 wipes regardless\)"
    assert_journal_not_contains "local storage device wipe commencing"
    data_pair_unchanged "both disks untouched"
}

# The image server does not answer (nothing listens on port 9): the disks,
# large enough and holding data, are not wiped, and the message names the
# server and metal.fetch-timeout.
scenario_preflight_no_server() {
    attach_data_pair a b "$DISK_SIZE" DATA NOSRV
    vm_boot --append "metal.server=http://10.0.2.2:9/ metal.fetch-timeout=20 $DISKS_BASE" || true
    assert_emergency
    assert_journal_contains "preflight: the image answered from no source .*nothing is wiped; retrying in"
    assert_journal_contains "preflight failed: metal.server: the image answered from no source within metal.fetch-timeout=20 s \(http://10.0.2.2:9/squashfs.img"
    assert_journal_not_contains "local storage device wipe commencing"
    data_pair_unchanged "both disks untouched"
}

# Issue 19: a paved node is paved again (metal.no-wipe=0) while the image
# server is down. Boot 1 paves and writes a marker. Boot 2: every request
# gets 503 until the wipe's preflight has said twice that it keeps the disks
# and is retrying; then the server comes back (within metal.fetch-timeout),
# and only then is the node wiped, paved again (the marker gone) and booted.
scenario_preflight_server_down() {
    publish_image
    local cmd="metal.server=http://10.0.2.2:8081/ metal.fetch-timeout=300 $DISKS_BASE"
    vm_add_blank_pair DOWN
    boot_reaches_root --append "$cmd metaltest.hook=write-marker"

    fault_reset
    fault_control '{"path": "/", "status": 503, "fail_count": -1}'
    local serial2="$RUN_DIR/serial.2.log"
    (
        serial_log_wait "$serial2" "nothing is wiped; retrying in" || exit 0
        sleep 8
        grep -c "nothing is wiped; retrying in" "$serial2" >"$RUN_DIR/retries-before-up"
        fault_reset
        date +%T >"$RUN_DIR/server-up"
    ) &
    local watcher=$!
    vm_boot --append "$cmd metaltest.hook=read-marker" || true
    wait "$watcher" || true
    check "the server came back during boot 2 ($(cat "$RUN_DIR/server-up" 2>/dev/null))" test -f "$RUN_DIR/server-up"
    assert_report
    assert_journal_contains "preflight: the image answered from no source .*nothing is wiped; retrying in"
    # Nothing was wiped while the server was down: every retry comes before
    # the countdown, and the countdown came after the server was back.
    check "the preflight retried before the wipe began" \
        bash -c "awk '/nothing is wiped; retrying in/ { r = NR } /Warning: local storage device wipe commencing/ && !w { w = NR } END { exit !(r && w && r < w) }' '$RESULTS/journal.txt'"
    assert_journal_contains "an existing layout; metal.no-wipe=0 wipes and paves it again"
    assert_file_exists marker/NONE
    assert_report_mount LiveOS_rootfs / overlay
}
