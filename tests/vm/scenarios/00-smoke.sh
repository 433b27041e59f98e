# shellcheck shell=bash
# Smoke scenarios: prove the bench itself (kernel, both initrd builders, the
# Debian root, the report and emergency paths) without any metalroot step.
# No metal.* parameters: metalroot's generator must write nothing.

# Boot the ext4 copy of the Debian root, found by label on a virtio-scsi
# disk, through the given initrd; check the root's systemd got to
# multi-user.target from that disk.
_smoke_boot() {
    local builder=$1 root dev
    root="$(vm_copy_image "$ROOT_EXT4" root)"
    vm_add_scsi "$root" metaltest-root
    vm_boot --initrd "$builder" --append "root=LABEL=METALTEST rw" --timeout 240

    assert_report
    assert_serial_contains 'METALTEST: multi-user reached'
    assert_file_contains cmdline 'root=LABEL=METALTEST'
    assert_file_contains multi-user-target '^active$'
    assert_system_state running degraded
    assert_file_contains os-release 'VERSION_CODENAME=bookworm'
    dev="$(report_dev_by_serial metaltest-root)"
    check "the root disk (serial metaltest-root) is in lsblk" test -n "$dev"
    assert_report_mount "$dev" / ext4
    assert_eq "$(report_dev_by_label METALTEST)" "$dev" "label METALTEST is on that disk"
    # The journal spans the initrd too (the runtime journal survives
    # switch-root).
    assert_journal_contains 'initrd-switch-root'
    # No metal.* parameters: the generator produced no unit, so systemd never
    # mentioned one.
    assert_file_not_contains journal-metalroot.json '"(UNIT|_SYSTEMD_UNIT)":"metalroot'
    assert_journal_not_contains 'metalroot[-a-z0-9@]*\.service'
}

scenario_smoke_dracut() {
    _smoke_boot dracut
    # dracut's own initrd services ran.
    assert_journal_contains 'dracut-(cmdline|pre-udev|initqueue|pre-pivot)'
    # The test root carries an SELinux relabel flag; only seed 001's iSCSI
    # hand-over removes it (iscsi-multipath checks that).
    assert_file_contains autorelabel "^present$"
}

scenario_smoke_mkosi() {
    _smoke_boot mkosi
    # Not dracut: none of dracut's hook services ran.
    assert_journal_not_contains 'dracut-(cmdline|pre-udev|initqueue|pre-pivot)'
}

# A root that never appears: the initrd gives up after the (shortened)
# device timeout and isolates emergency.target; the test add-on must report
# that on the results disk. Both builders: their emergency paths differ
# (dracut's shell vs systemd's sulogin; journald state).
# Three ways to shorten the 90 s device wait, because each initrd honours a
# different one: dracut turns rd.timeout into systemd's default timeouts,
# systemd 254 (dracut's, from the host) has its own device timeout, and
# mkosi's systemd 252 only took x-systemd.device-timeout on the root mount.
_smoke_emergency() {
    vm_boot --initrd "$1" --timeout 240 \
        --append "root=LABEL=NOPE ro rootflags=x-systemd.device-timeout=20s rd.timeout=20 systemd.default_timeout_start_sec=20"

    assert_emergency
    assert_serial_contains 'METALTEST: emergency reached'
    assert_file_contains cmdline 'root=LABEL=NOPE'
    # It was the missing root that failed, and the initrd's journal says so.
    # (Nothing is in "failed" state: the jobs failed, the units stayed
    # inactive, so failed-units.txt is empty here.)
    assert_journal_contains 'Timed out waiting for device.*NOPE'
    assert_journal_contains 'Dependency failed for .*(initrd-root-fs.target|Initrd Root File System)'
    assert_journal_contains 'Reached target .*(emergency.target|Emergency Mode)'
    # We never left the initrd.
    assert_file_missing REPORT
    assert_file_exists failed-units.txt
    assert_file_exists list-units-metalroot.txt
    assert_file_exists status-metalroot.txt
}

scenario_smoke_emergency() {
    _smoke_emergency dracut
}

scenario_smoke_emergency_mkosi() {
    _smoke_emergency mkosi
}
