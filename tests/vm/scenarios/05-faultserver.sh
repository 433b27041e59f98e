# shellcheck shell=bash
# The fault server's own self-test (no VM): the fetch scenarios rely on its
# range, cut, corrupt, stall, status and throttle behaviour.

scenario_faultserver_selftest() {
    if "$VM_DIR/faultserver_test.sh" >"$RUN_DIR/faultserver_test.log" 2>&1; then
        pass "tests/vm/faultserver_test.sh: $(tail -n1 "$RUN_DIR/faultserver_test.log")"
    else
        fail "tests/vm/faultserver_test.sh: $(tail -n1 "$RUN_DIR/faultserver_test.log") (see faultserver_test.log)"
    fi
}
