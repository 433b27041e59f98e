# shellcheck shell=bash
# Fetching the image (issue 5): resume after a cut, a corrupt image refused,
# failover between servers, an image on a labelled USB stick (signed, with
# the key in the initrd), https. Most
# boot to RAM (metal.ram=…) so no disk layout is built and the boots are
# short; fetch-label runs seed 000's full disk path from the stick.

FETCH_NET="ip=dhcp rd.neednet=1"

scenario_fetch_resume() {
    publish_image
    local size
    size=$(stat -c %s "$WWW/squashfs.img")
    # The first GET of the image is cut at half its bytes. The rule's prefix
    # also matches the .sha256 sidecar, which is fetched first (and too short
    # to be cut): hence two requests.
    fault_control "{\"path\": \"/squashfs.img\", \"cut_at\": $((size / 2)), \"fail_count\": 2}"
    boot_reaches_root --append "metal.server=http://10.0.2.2:8081/ metal.ram=overlay $FETCH_NET"
    assert_journal_contains "resuming http://10.0.2.2:8081/squashfs.img at byte [0-9]+"
    assert_journal_contains "sha256 verified"
    assert_report_mount LiveOS_rootfs / overlay
    local served
    served=$(fault_stats | jq -r .body_bytes)
    check "bytes served $served <= 1.05 x image ($size)" test "$served" -le $((size * 105 / 100))
    echo "fetch-resume: image $size bytes, served $served bytes" >>"$RUN_DIR/summary.txt"
}

scenario_fetch_corrupt() {
    publish_image
    # Every GET of the image has one byte flipped in the middle.
    fault_control '{"path": "/squashfs.img", "corrupt_at": 1048576, "fail_count": -1}'
    vm_boot --timeout 300 --append "metal.server=http://10.0.2.2:8081/ metal.ram=overlay metal.fetch-timeout=30 $FETCH_NET" || true
    assert_emergency
    local want
    want=$(cut -d' ' -f1 "$WWW/squashfs.img.sha256")
    assert_journal_contains "sha256 mismatch for http://10.0.2.2:8081/squashfs.img: expected $want, got [0-9a-f]{64}"
    assert_journal_not_contains "Finished metalroot-sysroot.service"
    assert_journal_not_contains "mounting .* at /sysroot"
}

scenario_fetch_mirror_failover() {
    publish_image
    # The first server is dead (nothing listens on port 9).
    boot_reaches_root --append "metal.server=http://10.0.2.2:9/ metal.server=http://10.0.2.2:8080/ metal.ram=overlay $FETCH_NET"
    assert_journal_contains "fetch from http://10.0.2.2:9/squashfs.img failed"
    assert_journal_contains "failing over to the next server"
    assert_journal_contains "fetched http://10.0.2.2:8080/squashfs.img"
    assert_report_mount LiveOS_rootfs / overlay
}

scenario_fetch_https() {
    publish_image
    boot_reaches_root --append "metal.server=https://10.0.2.2:8443/ metal.ram=squashfs $FETCH_NET"
    assert_journal_contains "fetched https://10.0.2.2:8443/squashfs.img"
    assert_journal_contains "sha256 verified"
    assert_report_mount "~^/dev/loop" / squashfs
}

# The image on a USB stick labelled IMGUSB (seed 000's file://dir?LABEL=):
# no network at all; the stick is the source and is never wiped.
scenario_fetch_label() {
    local stick="$RUN_DIR/disks/stick.img" tree="$RUN_DIR/stick"
    mkdir -p "$tree/images" "$RUN_DIR/disks"
    cp "$ROOT_SQUASHFS" "$tree/images/squashfs.img"
    local sum
    sum=$(sha256sum "$tree/images/squashfs.img" | cut -d' ' -f1)
    # Signed on the stick too (issue 17: the label source is checked like
    # http), with the key in the initrd: the wipe's preflight and the fetch
    # both read images/squashfs.img.minisig there.
    trust_keygen
    trust_sign "$tree/images/squashfs.img" "metaltest stick image"
    truncate -s 2G "$stick"
    mkfs.ext4 -q -F -L IMGUSB -d "$tree" "$stick"
    local before
    before=$(sha256sum "$stick" | cut -d' ' -f1)
    # 400 GB sparse: the arrays take only disks of 350 GiB or more, as
    # dracut-metal-mdsquash's do, whatever the sizes asked.
    vm_add_scsi "$(vm_disk a 400G)" LABEL-A
    vm_add_scsi "$(vm_disk b 400G)" LABEL-B
    vm_add_usb "$stick" LABEL-USB
    boot_reaches_root --initrd "$(trust_initrd dracut)" --append "metal.server=file://images?LABEL=IMGUSB metal.sha256=$sum metal.aux-md-size=0 root=live:LABEL=SQFSRAID rd.live.overlay=LABEL=ROOTRAID metal.wipe-delay=2 metal.sqfs-md-size=25 metal.oval-md-size=25"
    assert_journal_contains "fetched file://images\?LABEL=IMGUSB"
    assert_journal_contains "sha256 verified: $sum"
    assert_journal_contains "preflight: the image answers at file://images\?[^ ]*, signed by a trusted key"
    assert_journal_contains "signature verified: key $TRUST_KEYID, trusted comment: metaltest stick image\$"
    assert_journal_contains "serial \"LABEL-USB\"\): skipped: USB device"
    assert_report_mount LiveOS_rootfs / overlay
    assert_eq "$(sha256sum "$stick" | cut -d' ' -f1)" "$before" "the USB stick is unchanged"
}
