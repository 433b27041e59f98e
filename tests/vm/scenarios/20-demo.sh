# shellcheck shell=bash
# The demo (issue 3): two blank disks, one virtio-scsi and one NVMe; the node
# wipes them, builds seed 000's RAID layout, fetches and verifies the image
# over HTTP, mounts the persistent overlay and switches root into the Debian
# root, whose systemd reaches multi-user.target and reports.

# The seed-000 command line, unchanged from what mdsquash users boot with,
# plus the initrd's network (ip=dhcp) and the test hook.
DEMO_CMDLINE="metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID rd.live.overlay=LABEL=ROOTRAID rd.live.overlay.overlayfs=1 ip=dhcp rd.neednet=1"

# publish_image: the test root as the served image, with its .sha256 sidecar.
publish_image() {
    cp --sparse=always "$ROOT_SQUASHFS" "$WWW/squashfs.img"
    (cd "$WWW" && sha256sum squashfs.img >squashfs.img.sha256)
}

# demo_summary: what was done and how long each step took, from the guest's
# journal (systemd's "Starting/Finished <Description>" lines, monotonic s).
demo_summary() {
    local out="$RUN_DIR/human-summary.txt" text
    text=$({
        echo "metalroot demo ($1 initrd): $(head -n1 "$RESULTS/system-state" 2>/dev/null || echo '?')"
        awk '
            function ts(   t) { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); return t + 0 }
            # systemd: "Starting|Finished <unit> - <Description>..."
            / systemd\[1\]: (Starting|Finished) metalroot-[a-z0-9-]+\.service / {
                t = ts()
                for (i = 1; i <= NF; i++) if ($i ~ /^metalroot-.*\.service$/) unit = $i
                desc = $0; sub(/^.* - /, "", desc); sub(/(\.\.\.|\.)$/, "", desc)
                if ($0 ~ / Starting /) { start[unit] = t; order[++n] = unit; what[unit] = desc }
                else end[unit] = t
            }
            /Starting initrd-switch-root.service/ && !sw { sw = ts() }
            /Reached target multi-user.target/ { mu = ts() }
            END {
                for (i = 1; i <= n; i++) {
                    u = order[i]
                    printf "  %6.1f s  %-24s %s (started at %.1f s)\n", end[u] - start[u], u, what[u], start[u]
                }
                if (sw) printf "  switch-root at %.1f s after power-on\n", sw
                if (mu) printf "  the Debian root reached multi-user.target at %.1f s\n", mu
            }
        ' "$RESULTS/journal.txt"
        echo "  arrays: $(grep -E '^md' "$RESULTS/mdstat" | tr '\n' ';')"
        echo "  logs: $RUN_DIR (${SERIAL##*/}, ${RESULTS##*/}/journal.txt)"
    })
    # Appended: the demo scenario boots both builders.
    echo "$text" >>"$out"
    echo "$text" >>"$RUN_DIR/summary.txt"
    echo "$text"
}

demo_boot() {
    local initrd=$1
    publish_image
    vm_add_scsi "$(vm_disk "$initrd-disk0" 400G)" DEMO-SCSI-0
    vm_add_nvme "$(vm_disk "$initrd-disk1" 400G)" DEMO-NVME-1
    boot_reaches_root --initrd "$initrd" --append "$DEMO_CMDLINE metaltest.hook=write-marker" --timeout 420
    assert_system_state running degraded
    # The layout seed 000 describes, built by the guest.
    assert_eq "$(grep -c '^md.* : active raid1' "$RESULTS/mdstat")" 3 "BOOT, SQFS and ROOT as raid1"
    assert_eq "$(grep -c '^md.* : active raid0' "$RESULTS/mdstat")" 1 "AUX as a stripe (mdsquash's)"
    assert_eq "$(grep -c '\[UU\]' "$RESULTS/mdstat")" 3 "each mirror has both members"
    check "labels BOOTRAID SQFSRAID ROOTRAID exist" \
        bash -c "for l in BOOTRAID SQFSRAID ROOTRAID; do grep -q \"LABEL=\\\"\$l\\\"\" '$RESULTS/blkid'; done"
    assert_file_contains vgs "metalvg0"
    # The root is the overlay of the fetched squashfs and the ROOTRAID upper.
    assert_report_mount LiveOS_rootfs / overlay
    assert_report_mount "~^/dev/md" /run/initramfs/live xfs
    assert_report_mount "~^/dev/md" /run/initramfs/overlayfs xfs
    assert_report_mount "~^/dev/loop" /run/rootfsbase squashfs
    # The image was verified, and the wipe ran with the seed's safeguards.
    assert_journal_contains "sha256 verified"
    assert_journal_contains "Warning: local storage device wipe commencing"
    assert_journal_contains "Found the following disks for the main RAID array \(qty. \[2\]\)"
    assert_journal_contains "Finished metalroot-sysroot.service"
    assert_file_contains fstab "LABEL=BOOTRAID"
    assert_serial_contains "METALTEST: multi-user reached"
    demo_summary "$initrd"
}

# The README's first command: both builders, one after the other.
scenario_demo() {
    demo_boot dracut
    # Fresh disks for the second builder; keep the boot counter, so both
    # boots' results stay (results/ and results.2/).
    vm_detach_disks
    demo_boot mkosi
}

scenario_demo_dracut() {
    demo_boot dracut
}

scenario_demo_mkosi() {
    demo_boot mkosi
}
