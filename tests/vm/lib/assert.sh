# shellcheck shell=bash
# Assertions on what a guest did, for scenarios. Sourced by tests/vm/run.
#
# Every assert_* prints "ok - ..." or "FAIL - ..." and appends that line to
# $RUN_DIR/assertions.txt; a scenario fails if any line says FAIL (or the
# scenario function returns non-zero). Asserts never exit, so one run shows
# every broken expectation. Paths are relative to $RESULTS, the results of
# the latest vm_boot (set RESULTS yourself to look at an earlier boot).
#
# Results files written by the root's report (tests/vm/guest) and the
# initrd's emergency report (tests/vm/initrd-addon) are listed in
# tests/vm/README.md.

_record() {
    echo "$1" | tee -a "$RUN_DIR/assertions.txt" >&2
}

pass() { _record "ok - $*"; }

fail() { _record "FAIL - $*"; }

# check DESCRIPTION COMMAND...: pass if COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}

assert_eq() { # assert_eq ACTUAL EXPECTED DESCRIPTION
    if [[ "$1" == "$2" ]]; then
        pass "$3 ($1)"
    else
        fail "$3: got '$1', expected '$2'"
    fi
}

# assert_marker_boots N WHAT: the write-marker hook's file holds N boots.
assert_marker_boots() {
    assert_eq "$(wc -l <"$RESULTS/marker/boots" 2>/dev/null)" "$1" "$2"
}

assert_file_exists() { # FILE (relative to $RESULTS)
    if [[ -e "$RESULTS/$1" ]]; then pass "$1 exists"; else fail "$1 missing in $RESULTS"; fi
}

assert_file_missing() {
    if [[ ! -e "$RESULTS/$1" ]]; then pass "$1 absent"; else fail "$1 should not exist in $RESULTS"; fi
}

# assert_file_contains FILE ERE: some line of FILE matches the extended
# regular expression.
assert_file_contains() {
    if [[ ! -f "$RESULTS/$1" ]]; then
        fail "$1 missing in $RESULTS (looking for /$2/)"
    elif grep -Eq -- "$2" "$RESULTS/$1"; then
        pass "$1 matches /$2/"
    else
        fail "$1 does not match /$2/"
    fi
}

assert_file_not_contains() {
    if [[ ! -f "$RESULTS/$1" ]]; then
        fail "$1 missing in $RESULTS"
    elif grep -Eq -- "$2" "$RESULTS/$1"; then
        fail "$1 matches /$2/: $(grep -Em1 -- "$2" "$RESULTS/$1")"
    else
        pass "$1 does not match /$2/"
    fi
}

assert_serial_contains() { # ERE in the serial log of the latest boot
    if grep -Eq -- "$1" "$SERIAL"; then
        pass "serial log matches /$1/"
    else
        fail "serial log $SERIAL does not match /$1/"
    fi
}

assert_journal_contains() { assert_file_contains journal.txt "$1"; }
assert_journal_not_contains() { assert_file_not_contains journal.txt "$1"; }
assert_mdstat_contains() { assert_file_contains mdstat "$1"; }

# The root systemd reached multi-user.target and the report is complete.
assert_report() {
    if [[ -f "$RESULTS/.no-results" ]]; then
        fail "no report: the guest wrote nothing to the results disk (see $SERIAL)"
        return 0
    fi
    assert_file_exists REPORT
    assert_file_exists MULTI_USER_REACHED
    assert_file_exists DONE
}

# boot_reaches_root VM_BOOT_ARGS...: a boot that must reach the real root:
# the guest's report is the verdict, not vm_boot's status.
boot_reaches_root() {
    vm_boot "$@" || true
    assert_report
}

# The initrd failed into emergency.target and its reporter ran.
assert_emergency() {
    if [[ -f "$RESULTS/.no-results" ]]; then
        fail "no emergency report: the guest wrote nothing to the results disk (see $SERIAL)"
        return 0
    fi
    assert_file_exists EMERGENCY
    assert_file_exists DONE
}

# assert_system_state STATE...: systemctl is-system-running said one of them.
assert_system_state() {
    local got want
    got="$(head -n1 "$RESULTS/system-state" 2>/dev/null)"
    for want in "$@"; do
        if [[ "$got" == "$want" ]]; then
            pass "system state $got"
            return 0
        fi
    done
    fail "system state '$got', expected one of: $*"
}

# report_dev_by_serial SERIAL: /dev/NAME of the disk with that serial in
# the guest's lsblk -J -O (empty if none).
report_dev_by_serial() {
    jq -r --arg s "$1" \
        '[.. | objects | select(.serial? == $s and .type? == "disk") | .path // ("/dev/" + .name)][0] // empty' \
        "$RESULTS/lsblk.json" 2>/dev/null
}

# report_dev_by_label LABEL: /dev/NAME of the block device with that
# filesystem label.
report_dev_by_label() {
    jq -r --arg l "$1" \
        '[.. | objects | select(.label? == $l) | .path // ("/dev/" + .name)][0] // empty' \
        "$RESULTS/lsblk.json" 2>/dev/null
}

# report_mount_field TARGET FIELD: a field (source, fstype, options) of the
# mount at TARGET in the guest's findmnt -J.
report_mount_field() {
    jq -r --arg t "$1" --arg f "$2" \
        '[.. | objects | select(.target? == $t)][-1][$f] // empty' \
        "$RESULTS/findmnt.json" 2>/dev/null
}

# assert_report_mount SOURCE TARGET FSTYPE: the guest had SOURCE mounted on
# TARGET with FSTYPE. SOURCE "-" skips the source check; a SOURCE starting
# with "~" is an ERE (e.g. "~^/dev/md"). findmnt prints bind/subvolume
# sources as DEV[/path]; the [..] part is ignored.
assert_report_mount() {
    local src=$1 target=$2 fstype=$3 got_src got_fs
    if [[ ! -f "$RESULTS/findmnt.json" ]]; then
        fail "no findmnt.json in $RESULTS"
        return 0
    fi
    got_src="$(report_mount_field "$target" source)"
    got_src="${got_src%%\[*}"
    got_fs="$(report_mount_field "$target" fstype)"
    if [[ -z "$got_fs" ]]; then
        fail "nothing mounted on $target"
        return 0
    fi
    local ok=1
    case "$src" in
        -) ;;
        \~*) [[ "$got_src" =~ ${src#\~} ]] || ok= ;;
        *) [[ "$got_src" == "$src" ]] || ok= ;;
    esac
    [[ "$got_fs" == "$fstype" ]] || ok=
    if [[ -n "$ok" ]]; then
        pass "$target is $got_fs from $got_src"
    else
        fail "$target is $got_fs from $got_src, expected $fstype from $src"
    fi
}
