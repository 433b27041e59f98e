# shellcheck shell=bash
# Operability (issue #8): what an operator at the serial console sees.
#   ops-status    a failed fetch; `metalroot status` typed into the emergency
#                 shell shows the unit, the URL and the error
#   ops-debug     metal.debug=1 adds metalroot's debug lines, nobody else's
#   ops-trap      metal.trap=1 stops before switch-root in a shell; a file
#                 written there is in the booted root; leaving boots on
#   ops-progress  a throttled download: `systemctl status` shows a changing
#                 STATUS= line
#
# The console driver: the guest's serial console reads a FIFO
# (VM_CONSOLE_INPUT, see lib/vm.sh) that _ops_console types into, waiting
# for text in the serial log between the lines it sends. What it types is
# echoed too, so a marker to wait for is computed by the guest's shell
# (`echo OPS-$((6*7))` prints OPS-42; its echo does not contain OPS-42).
# The live medium is 50-root.sh's live_medium.

# _ops_wait FILE ERE SECS: until a line of FILE after line $_OPS_LINE
# matches ERE (CRs dropped; the last, unfinished line counts, so a prompt
# matches), then moves $_OPS_LINE to that line; 1 on timeout.
_ops_wait() {
    local t=0 n
    while :; do
        n=$(tail -n +"$((_OPS_LINE + 1))" "$1" 2>/dev/null | tr -d '\r' | grep -anE -m1 -- "$2" | cut -d: -f1)
        if [[ -n "$n" ]]; then
            _OPS_LINE=$((_OPS_LINE + n))
            return 0
        fi
        sleep 1
        t=$((t + 1))
        ((t < $3)) || return 1
    done
}

# _ops_console FIFO SERIAL STEP...: STEP is "wait:ERE" (a line after the
# previous match, up to 150 s × VM_TIMEOUT_SCALE), "wait0:ERE" (any line) or "send:TEXT"
# (typed, then Enter). Logs to
# $RUN_DIR/console-driver.log; returns 1 when a wait times out. Keeps the
# FIFO open until QEMU has powered off (or 30 s), so the guest never reads
# EOF mid-session.
_ops_console() {
    local fifo=$1 serial=$2 step rc=0
    shift 2
    _OPS_LINE=0
    exec 3>"$fifo"
    for step in "$@"; do
        case "$step" in
            wait:* | wait0:*)
                [[ $step == wait0:* ]] && _OPS_LINE=0
                echo "$(date +%T) $step" >>"$RUN_DIR/console-driver.log"
                if ! _ops_wait "$serial" "${step#*:}" $((150 * VM_TIMEOUT_SCALE)); then
                    echo "$(date +%T) TIMEOUT" >>"$RUN_DIR/console-driver.log"
                    rc=1
                    break
                fi
                echo "$(date +%T)   found at line $_OPS_LINE" >>"$RUN_DIR/console-driver.log"
                ;;
            send:*)
                echo "$(date +%T) $step" >>"$RUN_DIR/console-driver.log"
                sleep 1
                printf '%s\n' "${step#send:}" >&3
                ;;
        esac
    done
    _OPS_LINE=0
    _ops_wait "$serial" 'reboot: Power down' $((30 * VM_TIMEOUT_SCALE)) || true
    exec 3>&-
    return "$rc"
}

# _ops_boot_driven "DRIVER STEPS" VM_BOOT_ARGS...: boots with the driver
# typing STEPS (an array name) into the console.
_ops_boot_driven() {
    local -n _ops_steps_ref=$1
    shift
    local fifo="$RUN_DIR/console.in" serial="$RUN_DIR/serial.log" drv rc=0
    ((VM_BOOTS > 0)) && serial="$RUN_DIR/serial.$((VM_BOOTS + 1)).log"
    rm -f "$fifo" "$serial"
    mkfifo "$fifo"
    _ops_console "$fifo" "$serial" "${_ops_steps_ref[@]}" &
    drv=$!
    VM_CONSOLE_INPUT=$fifo vm_boot "$@" || rc=$?
    local drc=0
    wait "$drv" || drc=$?
    rm -f "$fifo"
    check "the console driver saw every prompt it waited for (console-driver.log)" test "$drc" = 0
    return "$rc"
}

# The lines between two markers of the serial log, without CR.
_ops_between() { # FROM_ERE TO_ERE: the last block from FROM to TO
    tr -d '\r' <"$SERIAL" | tac | sed -nE "/$2/,/$1/p" | tac
}

scenario_ops_status() {
    publish_image
    # Every GET of the image has one byte flipped: the fetch fails its
    # sha256 check and the boot stops in the emergency shell.
    fault_control '{"path": "/squashfs.img", "corrupt_at": 1048576, "fail_count": -1}'
    # shellcheck disable=SC2034  # used through a nameref
    local steps=(
        "wait:Control-D to continue"
        "send:"
        "wait:^[a-z0-9:/.-]*# "
        "send:metalroot status; echo OPS-STATUS-\$((40+2))"
        "wait:^OPS-STATUS-42"
        "send:ls -1 /usr/share/man/man7 /usr/share/man/man8; echo OPS-MAN-\$((40+2))"
        "wait:^OPS-MAN-42"
        "wait0:METALTEST: emergency shell left to the console driver"
        "send:systemctl --no-block poweroff"
    )
    _ops_boot_driven steps --timeout 240 \
        --append "metal.server=http://10.0.2.2:8081/ metal.ram=overlay metal.fetch-timeout=30 ip=dhcp rd.neednet=1 metaltest.console"
    assert_emergency
    _ops_between '^metalroot status \(systemd via' '^OPS-STATUS-42' >"$RUN_DIR/status.txt"
    # Before anyone typed: the package's metalroot-emergency-status.service
    # (units/) printed the same status on the console ahead of the shell.
    local auto prompt
    auto=$(grep -anm1 '^metalroot status (systemd via' "$SERIAL" | cut -d: -f1)
    prompt=$(grep -anm1 'Control-D to continue' "$SERIAL" | cut -d: -f1)
    check "metalroot status printed on the console before the emergency prompt" \
        test -n "$auto" -a -n "$prompt" -a "${auto:-0}" -lt "${prompt:-0}"
    check "that status names the failed fetch" \
        bash -c "sed -n '${auto:-1},${prompt:-1}p' '$SERIAL' | grep -q '^metalroot-fetch.service  FAILED: exit status 1'"
    # Wrapped lines (10 spaces, or 8 more than their first line in the
    # plan) joined again, for the assertions.
    awk '/^          / && NR > 1 { sub(/^ +/, " "); buf = buf $0; next }
         { if (NR > 1) print buf; buf = $0 } END { print buf }' "$RUN_DIR/status.txt" >"$RESULTS/ops-status.txt"
    local want
    want=$(cut -d' ' -f1 "$WWW/squashfs.img.sha256")
    assert_file_contains ops-status.txt '^metalroot status \(systemd via /run/systemd/private\)'
    assert_file_contains ops-status.txt '^metalroot-fetch.service  FAILED: exit status 1'
    assert_file_contains ops-status.txt 'fetch the root image from http://10.0.2.2:8081/'
    assert_file_contains ops-status.txt "^  error: +could not fetch squashfs.img from any server: sha256 mismatch for http://10.0.2.2:8081/squashfs.img: expected $want,"
    assert_file_contains ops-status.txt '^  more: +journalctl -b -u metalroot-fetch.service'
    assert_file_contains ops-status.txt '^  status: '
    assert_file_contains ops-status.txt '^the plan \(/run/metalroot/plan.txt\):'
    assert_file_contains ops-status.txt 'runs: +/usr/bin/metalroot fetch --source http://10.0.2.2:8081/'
    # The man pages are in the initrd (no man(1) there: they are files).
    assert_serial_contains '^metalroot\.7'
    assert_serial_contains '^metalroot-generator\.8'
    assert_serial_contains '^metalroot-status\.8'
    # 80 columns: every line of the status block (kernel lines aside).
    check "metalroot status fits 80 columns" \
        bash -c "! grep -vE '^\[' '$RUN_DIR/status.txt' | awk 'length > 80 { bad = 1 } END { exit !bad }'"
}

scenario_ops_debug() {
    vm_add_scsi "$(live_medium live OPSLIVE)" OPS-LIVE
    local base="root=live:LABEL=OPSLIVE rd.live.image rd.live.overlay.overlayfs=1 rd.live.overlay.size=256 metaltest.hook=journal-debug"
    vm_boot --append "$base" --timeout 240
    assert_report
    local without=$RESULTS
    vm_boot --append "$base metal.debug=1" --timeout 240
    assert_report
    local with=$RESULTS
    # Debug entries per identifier, in each boot.
    local f
    for f in "$without" "$with"; do
        jq -r '.SYSLOG_IDENTIFIER // ._COMM // "?"' "$f/journal-debug.json" | sort | uniq -c >"$f/debug-identifiers.txt"
    done
    check "without metal.debug: no metalroot debug line" \
        bash -c "! grep -E ' metalroot-' '$without/debug-identifiers.txt'"
    assert_file_contains debug-identifiers.txt ' metalroot-sysroot$'
    assert_file_contains journal-debug.json '"METALROOT_STEP":"sysroot"'
    assert_file_contains journal-debug.json '"MESSAGE":"status: root assembled"'
    # Nobody else: the other identifiers with debug lines are the ones the
    # boot without metal.debug had too (the kernel's KERN_DEBUG lines).
    local others_with others_without extra
    others_with=$(awk '$2 !~ /^metalroot-/ { print $2 }' "$with/debug-identifiers.txt")
    others_without=$(awk '$2 !~ /^metalroot-/ { print $2 }' "$without/debug-identifiers.txt")
    extra=$(comm -23 <(sort <<<"$others_with") <(sort <<<"$others_without") | tr '\n' ' ')
    assert_eq "${extra% }" "" "identifiers with debug lines only under metal.debug=1, besides metalroot's"
    # systemd's own log level was not raised.
    assert_eq "$(cat "$with/systemd-log-level")" info "systemd's log level with metal.debug=1"
    cp "$without/debug-identifiers.txt" "$RUN_DIR/debug-identifiers.without.txt"
    cp "$with/debug-identifiers.txt" "$RUN_DIR/debug-identifiers.with.txt"
}

scenario_ops_trap() {
    vm_add_scsi "$(live_medium live OPSLIVE)" OPS-LIVE
    # shellcheck disable=SC2034  # used through a nameref
    local steps=(
        "wait:Inspect or change it, then leave this shell"
        "wait:metalroot-trap# "
        "send:findmnt -n -o FSTYPE /sysroot; mkdir -p /sysroot/var/lib/metaltest && echo written-in-the-trap >/sysroot/var/lib/metaltest/ops-trap && echo OPS-TRAP-\$((40+2))"
        "wait:^OPS-TRAP-42"
        "send:exit"
        "wait:METALTEST: multi-user reached"
    )
    _ops_boot_driven steps --timeout 240 \
        --append "root=live:LABEL=OPSLIVE rd.live.image rd.live.overlay.overlayfs=1 rd.live.overlay.size=256 metal.trap=1 metaltest.hook=read-marker"
    assert_report
    assert_file_contains marker/ops-trap '^written-in-the-trap$'
    assert_report_mount LiveOS_rootfs / overlay
    # The shell came before switch-root, with /sysroot already assembled.
    local trap_line switch_line
    trap_line=$(grep -anm1 'metalroot trap (metal.trap=1)' "$SERIAL" | cut -d: -f1)
    switch_line=$(grep -anE 'Switching root|initrd-switch-root' "$SERIAL" | head -n1 | cut -d: -f1)
    check "the trap shell (serial line ${trap_line:-none}) came before switch-root (line ${switch_line:-none})" \
        test "${trap_line:-999999}" -lt "${switch_line:-0}"
    check "/sysroot was the assembled overlay in the trap" bash -c "tr -d '\r' <'$SERIAL' | grep -qx overlay"
    assert_journal_contains 'trap shell left \(exit status: 0\); continuing the boot'
}

scenario_ops_progress() {
    # A 6 MiB stand-in for the image, sent at 512 KiB/s: ~12 s of download
    # for the sampler (metaltest.sample-status, in the test add-on) to read
    # `systemctl status metalroot-fetch.service` once a second. It is no
    # squashfs, so the boot then stops in sysroot: quick, and a second
    # failure that docs/troubleshooting.md shows.
    head -c $((6 << 20)) /dev/urandom >"$WWW/squashfs.img"
    (cd "$WWW" && sha256sum squashfs.img >squashfs.img.sha256)
    fault_control "{\"path\": \"/squashfs.img\", \"throttle_bps\": $((512 << 10)), \"fail_count\": -1}"
    vm_boot --timeout 240 \
        --append "metal.server=http://10.0.2.2:8081/ metal.ram=overlay ip=dhcp rd.neednet=1 metaltest.sample-status" || true
    assert_emergency
    tr -d '\r' <"$SERIAL" | grep -ao 'METALTEST-STATUS metalroot-fetch.service: *Status: .*' |
        sed 's/.*Status: //' >"$RESULTS/status-samples.txt" || true
    local pcts distinct
    pcts=$(grep -oE 'squashfs.img: [0-9]+% ' "$RESULTS/status-samples.txt" | grep -oE '[0-9]+' | uniq)
    distinct=$(sort -un <<<"$pcts" | grep -c . || true)
    check "at least 4 different download percentages sampled (got $distinct: $(tr '\n' ' ' <<<"$pcts"))" \
        test "$distinct" -ge 4
    check "the percentages only grow" bash -c "sort -n -c <<<'$pcts'"
    assert_file_contains status-samples.txt '^"downloading http://10.0.2.2:8081/squashfs.img: [0-9]+% \([0-9]+ of 6 MiB\) at 0\.[0-9] MiB/s"'
    # And where it stopped: sysroot could not mount the stand-in.
    assert_file_contains status-metalroot.txt 'metalroot-sysroot.service'
    assert_file_contains failed-units.txt 'metalroot-sysroot.service'
}
