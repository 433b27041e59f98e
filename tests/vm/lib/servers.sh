# shellcheck shell=bash
# Host-side servers for the VM scenarios, all bound to 127.0.0.1 only (the
# guest reaches them as 10.0.2.2 through QEMU's user network):
#
#   nginx        http://127.0.0.1:$HTTP_PORT    (default 8080)
#                https://127.0.0.1:$HTTPS_PORT  (default 8443, test CA)
#   faultserver  http://127.0.0.1:$FAULT_PORT   (default 8081)
#   tgtd         iSCSI portal 127.0.0.1:3260
#
# nginx and the fault server serve the same directory, $WWW.
#
# Sourced by tests/vm/run. Functions:
#   servers_start DIR      start everything; state, logs and www under DIR;
#                          stopped automatically when the script exits
#   servers_stop           stop everything (idempotent)
#   servers_reset          between scenarios: empty $WWW, drop fault rules
#                          and stats, iSCSI targets and accounts
#   fault_control JSON     add a fault rule (see faultserver.py)
#   fault_reset            drop fault rules, zero stats
#   fault_stats            print the fault server's stats JSON
#   tgt_add_target TID IQN FILE...    target TID with LUN 1..n backed by FILEs
#   tgt_set_chap TID USER PASS        CHAP: the initiator must log in as USER
#   tgt_set_mutual_chap TID USER PASS mutual CHAP: the target answers as USER
#   tgt_del_target TID
#   tgt_reset              delete every target and account
#   tgt_show               tgtadm's view of the targets (for logs)
#
# Manual use: tests/vm/lib/servers.sh DIR   (runs until Ctrl-C)

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HTTP_PORT="${METALTEST_HTTP_PORT:-8080}"
HTTPS_PORT="${METALTEST_HTTPS_PORT:-8443}"
FAULT_PORT="${METALTEST_FAULT_PORT:-8081}"
ISCSI_PORT=3260
# tgtd's management socket is a file (/var/run/tgtd/socket.N) shared by
# every network namespace: parallel workers each use their own N.
TGT_CONTROL_PORT="${METALTEST_TGT_CONTROL_PORT:-0}"
# What the guest uses to reach the host through QEMU's user network (for
# scenarios' command lines).
# shellcheck disable=SC2034
GUEST_HOST_IP=10.0.2.2

SERVERS_DIR=
WWW=
_NGINX_PID=
_FAULT_PID=
_TGTD_PID=

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
    local port=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# spawn_listening PIDVAR PORT SECONDS LOG WHAT CMD...: CMD in the
# background (no stdin, output appended to LOG, without the run's lock on
# fd 9), its pid in PIDVAR; waits up to SECONDS for 127.0.0.1:PORT, else
# shows LOG and dies: WHAT did not start.
spawn_listening() {
    local -n _spawned_pid=$1
    local port=$2 secs=$3 out=$4 what=$5
    shift 5
    "$@" </dev/null >>"$out" 2>&1 9>&- &
    _spawned_pid=$!
    wait_port "$port" "$secs" || { cat "$out" >&2; die "$what did not start"; }
}

port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_write_nginx_conf() {
    local tls="$CACHE/tls"
    mkdir -p "$SERVERS_DIR/nginx/tmp"
    # Foreground (daemon off), everything under the run dir, 127.0.0.1 only.
    # etag on and byte ranges are nginx defaults for static files; said here
    # so the scenarios' assumptions are visible. The access log records the
    # bytes each response sent, the Range asked for and If-Range, so a
    # scenario can tell a resumed download from a full one.
    cat >"$SERVERS_DIR/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $SERVERS_DIR/nginx/nginx.pid;
error_log $SERVERS_DIR/nginx/error.log info;
events { worker_connections 128; }
http {
    log_format metaltest '\$remote_addr [\$time_local] "\$request" \$status '
                         'body_bytes_sent=\$body_bytes_sent bytes_sent=\$bytes_sent '
                         'range="\$http_range" if_range="\$http_if_range" '
                         'rt=\$request_time';
    access_log $SERVERS_DIR/nginx/access.log metaltest;
    client_body_temp_path $SERVERS_DIR/nginx/tmp/body;
    proxy_temp_path $SERVERS_DIR/nginx/tmp/proxy;
    fastcgi_temp_path $SERVERS_DIR/nginx/tmp/fastcgi;
    uwsgi_temp_path $SERVERS_DIR/nginx/tmp/uwsgi;
    scgi_temp_path $SERVERS_DIR/nginx/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    etag on;
    max_ranges 1;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        root $WWW;
        autoindex on;
    }
    server {
        listen 127.0.0.1:$HTTPS_PORT ssl;
        ssl_certificate $tls/server.pem;
        ssl_certificate_key $tls/server.key;
        root $WWW;
        autoindex on;
    }
}
EOF
}

# The servers are started with fd 9 closed: tests/vm/run holds its run lock
# on fd 9, and a server that outlived a killed run must not keep it.
_start_nginx() {
    _write_nginx_conf
    nginx -t -q -p "$SERVERS_DIR/nginx" -e "$SERVERS_DIR/nginx/error.log" \
        -c "$SERVERS_DIR/nginx/nginx.conf" || die "nginx config test failed"
    nginx -p "$SERVERS_DIR/nginx" -e "$SERVERS_DIR/nginx/error.log" \
        -c "$SERVERS_DIR/nginx/nginx.conf" </dev/null >>"$SERVERS_DIR/nginx/stdout.log" 2>&1 9>&- &
    _NGINX_PID=$!
    wait_port "$HTTP_PORT" 10 && wait_port "$HTTPS_PORT" 10 ||
        { cat "$SERVERS_DIR/nginx/error.log" >&2; die "nginx did not start"; }
}

_start_faultserver() {
    spawn_listening _FAULT_PID "$FAULT_PORT" 10 "$SERVERS_DIR/faultserver.log" faultserver \
        python3 "$VM_DIR/faultserver.py" --root "$WWW" --bind 127.0.0.1 --port "$FAULT_PORT"
}

_tgtadm() {
    tgtadm -C "$TGT_CONTROL_PORT" --lld iscsi "$@"
}

# _tgt_shutdown: tgtd's documented stop (it ignores SIGTERM).
_tgt_shutdown() {
    tgtadm -C "$TGT_CONTROL_PORT" --op delete --mode system --force >/dev/null 2>&1 || true
}

_start_tgtd() {
    # One tgtd per host: it owns a fixed control socket. Refuse to touch one
    # we did not start.
    if _tgtadm --op show --mode sys >/dev/null 2>&1; then
        die "a tgtd is already running on control port $TGT_CONTROL_PORT; stop it first: tgtadm -C $TGT_CONTROL_PORT --op delete --mode system --force"
    fi
    # setsid: tgtd must not get the terminal's signals; it ignores SIGTERM
    # anyway and is stopped through tgtadm. The RDMA and oom_score_adj
    # warnings in its log are harmless.
    setsid tgtd -f -C "$TGT_CONTROL_PORT" --iscsi "portal=127.0.0.1:$ISCSI_PORT" </dev/null >>"$SERVERS_DIR/tgtd.log" 2>&1 9>&- &
    _TGTD_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        _tgtadm --op show --mode sys >/dev/null 2>&1 && wait_port "$ISCSI_PORT" 1 && return 0
        sleep 0.1
    done
    cat "$SERVERS_DIR/tgtd.log" >&2
    die "tgtd did not start"
}

# A run killed with SIGKILL (no trap) leaves its servers behind, holding the
# ports. Their pids are in DIR/pids; stop those that are still the same
# programs (checked by command line), and nothing else.
_stop_stale_servers() {
    local pidfile="$SERVERS_DIR/pids" pid name cmd
    [[ -f "$pidfile" ]] || return 0
    while read -r name pid; do
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || continue
        case "$name:$cmd" in
            nginx:*"$SERVERS_DIR/nginx"* | faultserver:*faultserver.py*"$SERVERS_DIR/www"*) ;;
            tgtd:tgtd*) _tgt_shutdown ;;
            *) continue ;;
        esac
        log "stopping $name (pid $pid) left by an earlier run"
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done <"$pidfile"
    rm -f "$pidfile"
}

servers_start() {
    SERVERS_DIR="$(realpath -m "$1")"
    WWW="$SERVERS_DIR/www"
    mkdir -p "$WWW"
    chmod 755 "$SERVERS_DIR" "$WWW" # nginx workers run as nobody
    ensure_test_cert >/dev/null
    _stop_stale_servers
    local p
    for p in "$HTTP_PORT" "$HTTPS_PORT" "$FAULT_PORT" "$ISCSI_PORT"; do
        port_busy "$p" && die "port 127.0.0.1:$p is already in use"
    done
    on_exit servers_stop
    _start_nginx
    _start_faultserver
    _start_tgtd
    printf 'nginx %s\nfaultserver %s\ntgtd %s\n' "$_NGINX_PID" "$_FAULT_PID" "$_TGTD_PID" \
        >"$SERVERS_DIR/pids"
    log "servers up: http :$HTTP_PORT, https :$HTTPS_PORT, faults :$FAULT_PORT, iscsi :$ISCSI_PORT (www $WWW)"
}

# _stop_pid VAR [SIGNAL [TENTHS]]: send SIGNAL (TERM) to the process whose
# pid is in VAR, KILL it after TENTHS tenths of a second (50).
_stop_pid() {
    local var=$1 pid=${!1} sig=${2:-TERM} tenths=${3:-50} i
    [[ -n "$pid" ]] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf -v "$var" ''
}

servers_stop() {
    if [[ -n "$_TGTD_PID" ]]; then
        _tgt_shutdown
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$_TGTD_PID" 2>/dev/null || break
            sleep 0.1
        done
        _stop_pid _TGTD_PID
    fi
    _stop_pid _FAULT_PID
    _stop_pid _NGINX_PID
    [[ -n "$SERVERS_DIR" ]] && rm -f "$SERVERS_DIR/pids"
    return 0
}

fault_control() {
    curl -fsS -X POST --data "$1" "http://127.0.0.1:$FAULT_PORT/_control" >/dev/null
}

fault_reset() {
    curl -fsS -X POST "http://127.0.0.1:$FAULT_PORT/_reset" >/dev/null
}

fault_stats() {
    curl -fsS "http://127.0.0.1:$FAULT_PORT/_stats"
}

tgt_add_target() {
    local tid=$1 iqn=$2 lun=1 f
    shift 2
    _tgtadm --op new --mode target --tid "$tid" -T "$iqn"
    for f in "$@"; do
        _tgtadm --op new --mode logicalunit --tid "$tid" --lun "$lun" -b "$f"
        lun=$((lun + 1))
    done
    _tgtadm --op bind --mode target --tid "$tid" -I ALL
}

# Accounts are global in tgtd; each is created once and bound to the target.
_tgt_account() {
    local user=$1 pass=$2
    if ! _tgtadm --op show --mode account | grep -qx "[[:space:]]*$user"; then
        _tgtadm --op new --mode account --user "$user" --password "$pass"
    fi
}

tgt_set_chap() {
    local tid=$1 user=$2 pass=$3
    _tgt_account "$user" "$pass"
    _tgtadm --op bind --mode account --tid "$tid" --user "$user"
}

tgt_set_mutual_chap() {
    local tid=$1 user=$2 pass=$3
    _tgt_account "$user" "$pass"
    _tgtadm --op bind --mode account --tid "$tid" --user "$user" --outgoing
}

# Discovery CHAP (seed 001's discovery.sendtargets.auth): an account bound
# without --tid is tgtd's global one, asked of SendTargets discovery
# sessions only (as tgt-admin's incomingdiscoveryuser/outgoingdiscoveryuser).
tgt_set_discovery_chap() {
    _tgt_account "$1" "$2"
    _tgtadm --op bind --mode account --user "$1"
}

tgt_set_discovery_mutual_chap() {
    _tgt_account "$1" "$2"
    _tgtadm --op bind --mode account --user "$1" --outgoing
}

tgt_del_target() {
    _tgtadm --op delete --mode target --tid "$1" --force
}

tgt_show() {
    _tgtadm --op show --mode target
}

tgt_reset() {
    [[ -n "$_TGTD_PID" ]] || return 0
    local tid user
    for tid in $(_tgtadm --op show --mode target | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
        tgt_del_target "$tid"
    done
    for user in $(_tgtadm --op show --mode account | sed -n '2,$p'); do
        _tgtadm --op delete --mode account --user "$user"
    done
}

servers_reset() {
    # Each scenario publishes what it serves: an image changed by one
    # scenario must not leak into the next.
    [[ -n "$WWW" && -d "$WWW" ]] && find "$WWW" -mindepth 1 -delete
    [[ -n "$_FAULT_PID" ]] && fault_reset
    tgt_reset
}

# Manual use: run the servers until interrupted.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    [[ $# -eq 1 ]] || die "usage: servers.sh DIR"
    servers_start "$1"
    log "Ctrl-C to stop"
    while sleep 3600; do :; done
fi
