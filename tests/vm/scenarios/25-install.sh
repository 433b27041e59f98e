# shellcheck shell=bash
# Installed as an operator installs it (issue 15): the initrd is the generic
# one `dracut --no-hostonly --add metalroot` builds from the installed .deb
# with the host's own dracut configuration: no test module, no driver list,
# no bench setting. Seed 000's command line and two blank disks. Judged from
# the serial console alone, as an operator at the console sees the boot:
# metalroot's generator and steps, the root's own systemd reaching
# multi-user.target, then what the operator would type (`findmnt /`,
# /proc/mdstat), printed by the test root's console-state hook.

scenario_install_operator() {
    local initrd
    initrd="$("$VM_DIR/lib/build-initrd.sh" operator "$CACHE/initrd-operator.img")"
    publish_image
    vm_add_scsi "$(vm_disk op-disk0 400G)" OP-SCSI-0
    vm_add_scsi "$(vm_disk op-disk1 400G)" OP-SCSI-1
    vm_boot --initrd "$initrd" --timeout 420 \
        --append "$DEMO_CMDLINE metaltest.hook=console-state"
    # The initrd: metalroot's generator ran (kmsg on the console) and its
    # steps finished (systemd's status lines).
    assert_serial_contains 'metalroot-generator: wrote [0-9]+ units and links'
    local u
    for u in wipe layout fetch sysroot handover; do
        assert_serial_contains "Finished .{0,12}metalroot-$u\\.servic"  # systemd cuts long lines at the console width
    done
    check "no metalroot unit failed on the console" \
        bash -c "! grep -aE 'Failed to start .{0,12}metalroot|metalroot-generator: failed' '$SERIAL'"
    # The real root, after switch-root: its own systemd reached multi-user.
    assert_serial_contains 'Welcome to .{0,8}Debian GNU/Linux 12 \(bookworm\).{0,8}!'
    assert_serial_contains 'Reached target .{0,12}multi-user\.target'
    # What the operator checks at the console.
    assert_serial_contains '^OPERATOR\| / +LiveOS_rootfs +overlay'
    assert_eq "$(tr -d '\r' <"$SERIAL" | grep -cE '^OPERATOR\| md[0-9]+ : active raid1')" 3 "three raid1 arrays in /proc/mdstat"
    assert_eq "$(tr -d '\r' <"$SERIAL" | grep -cE '^OPERATOR\| md[0-9]+ : active raid0')" 1 "AUX as a stripe in /proc/mdstat"
    assert_eq "$(tr -d '\r' <"$SERIAL" | grep -cE '^OPERATOR\| .*\[2/2\] \[UU\]')" 3 "each mirror with both members"
    assert_serial_contains '^OPERATOR\| (running|degraded)'
    assert_serial_contains '^OPERATOR\| active'
}

# The generator fails (issue 15): the package's binary, run as
# metalroot-generator, panics (its test hook, reached through
# systemd.setenv=, which systemd passes on to generators). The boot must stay
# diagnosable from the console: the kmsg line naming the cause, then the
# emergency shell with metalroot status printed by the package's
# metalroot-emergency-status.service, naming the failed unit.
scenario_install_generator_failure() {
    vm_boot --initrd dracut --timeout 240 \
        --append "metal.server=http://10.0.2.2:8080/ root=live:LABEL=SQFSRAID ip=dhcp rd.neednet=1 systemd.setenv=METALROOT_GENERATOR_TEST_PANIC=1"
    assert_emergency
    # The console: the generator's error line, then the status block.
    assert_serial_contains 'metalroot-generator: failed: internal error: panicked at .*METALROOT_GENERATOR_TEST_PANIC is set; the boot will stop in the emergency shell'
    assert_serial_contains '^metalroot status \(systemd via'
    assert_serial_contains '^metalroot-cmdline-error.service +FAILED'
    assert_serial_contains 'metalroot-generator failed: internal error'
    # systemd's view, as `systemctl status` shows it in the emergency shell.
    assert_file_contains failed-units.txt 'metalroot-cmdline-error\.service'
    assert_file_contains status-metalroot.txt 'metalroot: the generator failed'
    assert_file_contains status-metalroot.txt 'metalroot-generator failed: internal error: panicked at'
    # Nothing else of a plan was written: no step ran.
    assert_file_not_contains list-units-metalroot.txt 'metalroot-(wipe|layout|fetch|sysroot)'
}
