#!/bin/bash
# TEST ONLY dracut module: adds the metaltest emergency reporter (and the
# bench's test CA) to an initrd. tests/vm/lib/build-initrd.sh copies it into
# /usr/lib/dracut/modules.d/ and asks for it with --add; the product module
# is the package's 90metalroot and never depends on this.
#
# METALTEST_TREE: tests/vm/initrd-addon/tree (shared with the mkosi build),
# where the files come from (required).
# METALTEST_CA: PEM file appended to the initrd's CA bundle (optional).

# dracut sets moddir, initdir, systemdutildir, ... before sourcing this:
# shellcheck disable=SC2154

check() {
    return 255
}

depends() {
    echo systemd
    return 0
}

install() {
    local tree="${METALTEST_TREE:-}"
    [[ -d "$tree/usr/libexec/metaltest" ]] || {
        derror "metaltest: METALTEST_TREE (tests/vm/initrd-addon/tree) is not set or not there"
        return 1
    }

    inst_simple "$tree/usr/lib/systemd/system/metaltest-emergency-report.service" \
        "$systemdsystemunitdir/metaltest-emergency-report.service"
    inst_script "$tree/usr/libexec/metaltest/emergency-report" \
        /usr/libexec/metaltest/emergency-report
    $SYSTEMCTL -q --root "$initdir" add-wants emergency.target metaltest-emergency-report.service
    inst_simple "$tree/usr/lib/systemd/system/metaltest-initrd-snapshot.service" \
        "$systemdsystemunitdir/metaltest-initrd-snapshot.service"
    inst_script "$tree/usr/libexec/metaltest/initrd-snapshot" \
        /usr/libexec/metaltest/initrd-snapshot
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target metaltest-initrd-snapshot.service
    inst_simple "$tree/usr/lib/systemd/system/metaltest-status-sampler.service" \
        "$systemdsystemunitdir/metaltest-status-sampler.service"
    inst_script "$tree/usr/libexec/metaltest/status-sampler" \
        /usr/libexec/metaltest/status-sampler
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target metaltest-status-sampler.service

    # What the reporter runs. Most are in dracut's base already; -o because
    # a missing one only makes the report poorer.
    inst_multiple tar grep sync sleep cat tr
    inst_multiple -o lsblk findmnt blkid dmesg modprobe journalctl

    if [[ -n "${METALTEST_CA:-}" && -f "$METALTEST_CA" ]]; then
        inst_simple "$METALTEST_CA" /etc/metaltest/ca.pem
        mkdir -p "$initdir/etc/ssl/certs"
        {
            [[ -f /etc/ssl/certs/ca-certificates.crt ]] && cat /etc/ssl/certs/ca-certificates.crt
            cat "$METALTEST_CA"
        } >"$initdir/etc/ssl/certs/ca-certificates.crt.new"
        mv "$initdir/etc/ssl/certs/ca-certificates.crt.new" "$initdir/etc/ssl/certs/ca-certificates.crt"
    fi
}
