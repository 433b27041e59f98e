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
    local out="$RUN_DIR/human-summary.txt"
    {
        echo "metalroot demo ($1 initrd): $(head -n1 "$RESULTS/system-state" 2>/dev/null || echo '?')"
        awk '
            /(Starting|Finished) metalroot: / {
                t = substr($1, 2) + 0
                line = $0
                sub(/^.*(Starting|Finished) /, "", line); sub(/\.\.\.$/, "", line); sub(/\.$/, "", line)
                if ($0 ~ /Starting /) start[line] = t
                else if (line in start) { printf "  %-62s %6.1f s (at %.1f s)\n", line, t - start[line], start[line] }
            }
            /Reached target (initrd-switch-root|Switch Root)/ && !sw { printf "  switch-root at %.1f s\n", substr($1, 2); sw = 1 }
            /Reached target multi-user.target|Reached target Multi-User System/ { mu = substr($1, 2) }
            END { if (mu) printf "  real root reached multi-user.target at %.1f s after power-on\n", mu }
        ' "$RESULTS/journal.txt"
        echo "  arrays: $(grep -E '^md' "$RESULTS/mdstat" | tr '\n' ';')"
        echo "  logs: $RUN_DIR (serial.log, results/journal.txt, results/)"
    } >"$out"
    cat "$out" >>"$RUN_DIR/summary.txt"
    cat "$out"
}

demo_boot() {
    local initrd=$1
    publish_image
    vm_add_scsi "$(vm_disk "$initrd-disk0" 400G)" DEMO-SCSI-0
    vm_add_nvme "$(vm_disk "$initrd-disk1" 400G)" DEMO-NVME-1
    vm_boot --initrd "$initrd" --append "$DEMO_CMDLINE metaltest.hook=write-marker" --timeout 420 || true
    assert_report
    assert_system_state running degraded
    # The layout seed 000 describes, built by the guest.
    assert_eq "$(grep -c '^md.* : active raid1' "$RESULTS/mdstat")" 4 "four raid1 arrays"
    assert_eq "$(grep -c '\[UU\]' "$RESULTS/mdstat")" 4 "each array has both members"
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
    assert_journal_contains "Finished metalroot: assemble the root filesystem at /sysroot"
    assert_file_contains fstab "LABEL=BOOTRAID"
    assert_serial_contains "METALTEST: multi-user reached"
    demo_summary "$initrd"
}

# The README's first command: both builders, one after the other.
scenario_demo() {
    demo_boot dracut
    # Fresh disks for the second builder; keep the boot counter, so both
    # boots' results stay (results/ and results.2/).
    VM_DISK_ARGS=()
    VM_HAVE_SCSI=
    demo_boot mkosi
}

scenario_demo_dracut() {
    demo_boot dracut
}

scenario_demo_mkosi() {
    demo_boot mkosi
}
