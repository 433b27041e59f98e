# shellcheck shell=bash
# Fleet boots (issue 18): K guests booting the same command line at the same
# time, on one virtual LAN between them, fetching one image from a private
# origin, a host-side BitTorrent seed and each other. Sourced by
# tests/vm/run; every function runs inside a scenario ($RUN_DIR).
#
# Each guest has two NICs:
#   wan0  QEMU's user network (slirp, DHCP, the host's 127.0.0.1 as
#         10.0.2.2), as in every scenario; its MAC is set (52:54:00:12:35:1I)
#         so the kernel command line can name it
#   lan0  a QEMU socket network shared by the K guests of this fleet:
#         UDP multicast on 127.0.0.1 (group 230.0.0.1, a port of this run),
#         MAC 52:54:00:77:00:1I, static 192.168.77.1I/24
# Both are configured by the initrd's systemd-network-generator from
# fleet_net_args I (ifname= by MAC, ip=wan0:dhcp, a static ip= for lan0);
# the addresses stay after switch-root (nothing in the test root manages
# links). Node I (1..9) is 192.168.77.1I.
#
#   fleet_init K                 a fleet of K nodes (1..9) for this scenario:
#                                its LAN's port, the cleanup trap; call first
#   fleet_net_args I             node I's network arguments
#   fleet_node_ip I              192.168.77.1I
#   fleet_peers [PORT]           every node's IP:PORT, comma-separated (6881)
#   fleet_boot [--append ARGS] [vm_boot options]
#                                boot the K guests at once (1 vCPU each), node I
#                                in $RUN_DIR/nodeI/ with fleet_net_args I,
#                                ARGS and FLEET_NODE_APPEND[I]; waits for all;
#                                non-zero if any boot failed
#   fleet_node I                 point RESULTS and SERIAL at node I's boot
#   fleet_lan_hook_args          kernel arguments for the guest hook
#                                fleet-lan (probes the peers, barrier)
#   fleet_origin_start FILE...   a private nginx serving copies of FILEs;
#                                sets FLEET_ORIGIN_PORT, FLEET_ORIGIN_URL
#   fleet_origin_stop            stop it now (in-flight responses are cut
#                                after 1 s and logged with what they sent)
#   fleet_origin_stop_when SECS CMD...
#                                in the background: SECS seconds after CMD
#                                first succeeds (tried twice a second), stop it
#   fleet_origin_gets PATH       how many GETs of PATH it answered with 200
#   fleet_nodes_matching ERE     how many nodes' serial logs match ERE
#   fleet_origin_image_bytes [PATH]
#                                body bytes the origin sent for GETs of PATH
#                                (default /squashfs.img), from its access log
#   fleet_torrent FILE           FILE.torrent beside FILE (mktorrent: private,
#                                1 MiB pieces, no tracker)
#   fleet_seed_start TORRENT FILE [ARGS...]
#                                metalroot-torrent seed on 127.0.0.1 (the
#                                guests' 10.0.2.2:FLEET_SEED_PORT)
#   fleet_seed_stop
# Everything started here is stopped when the scenario's subshell exits
# (an EXIT trap; the runner's servers are not touched).

# shellcheck disable=SC2054  # QEMU's option values are comma lists
# The node subshells of fleet_boot set RUN_DIR for themselves only:
# shellcheck disable=SC2031

FLEET_LAN_PREFIX=192.168.77
FLEET_MCAST_GROUP=230.0.0.1
FLEET_K=0
FLEET_DIR=
FLEET_MCAST_PORT=
# Per-node kernel arguments, index 1..K (set by the scenario).
FLEET_NODE_APPEND=()
FLEET_ORIGIN_DIR=
FLEET_ORIGIN_PORT=
FLEET_ORIGIN_URL=
FLEET_SEED_PORT=
FLEET_BARRIER_FILE=fleet-release
_FLEET_ORIGIN_PID=
_FLEET_SEED_PID=
_FLEET_BG_PIDS=()
_FLEET_NODE_PIDS=()

fleet_node_ip() {
    echo "$FLEET_LAN_PREFIX.1$1"
}

fleet_lan_mac() {
    echo "52:54:00:77:00:1$1"
}

fleet_wan_mac() {
    echo "52:54:00:12:35:1$1"
}

# fleet_net_args I: both NICs named by their MAC (systemd-network-generator
# writes a .link file for each ifname=), DHCP on the user network, a static
# address and no gateway on the LAN. rd.neednet=1: the initrd brings the
# network up (metalroot's fetch waits for any routable link).
fleet_net_args() {
    local i=$1
    echo "ifname=wan0:$(fleet_wan_mac "$i") ip=wan0:dhcp" \
        "ifname=lan0:$(fleet_lan_mac "$i") ip=$(fleet_node_ip "$i"):::255.255.255.0::lan0:none" \
        "rd.neednet=1"
}

# fleet_node_ips [SUFFIX]: the K nodes' LAN addresses, each followed by
# SUFFIX, comma-separated.
fleet_node_ips() {
    local i out=()
    for ((i = 1; i <= FLEET_K; i++)); do
        out+=("$(fleet_node_ip "$i")${1-}")
    done
    local IFS=,
    echo "${out[*]}"
}

# fleet_peers [PORT]: the K nodes as IP:PORT,IP:PORT,...
fleet_peers() {
    fleet_node_ips ":${1:-6881}"
}

# fleet_lan_hook_args: the guest hook fleet-lan (guest/hooks/fleet-lan):
# each node probes the others on the LAN and the host's nginx, then waits
# at a barrier (fleet_boot releases it once every node has probed or
# ended), so no node powers off while another still needs it.
fleet_lan_hook_args() {
    echo "metaltest.hook=fleet-lan metaltest.fleet-peers=$(fleet_node_ips)" \
        "metaltest.fleet-host=10.0.2.2:$HTTP_PORT metaltest.fleet-release=$FLEET_BARRIER_FILE" \
        "metaltest.fleet-wait=$((600 * VM_TIMEOUT_SCALE))"
}

# fleet_free_port BASE: the first port from BASE on that nothing on
# 127.0.0.1 accepts on.
fleet_free_port() {
    local p=$1
    while port_busy "$p"; do
        p=$((p + 1))
    done
    echo "$p"
}

# fleet_init K: a fleet of K nodes (1..9). Its LAN's multicast port is
# unique per run (from the scenario's shell pid): two fleets in one network
# namespace must not share a LAN (every worker of tests/vm/run has its own
# namespace; a scenario run by hand beside another would not). Sets the
# EXIT trap that stops what fleet.sh started.
fleet_init() {
    (($1 >= 1 && $1 <= 9)) || die "fleet_init: 1 to 9 nodes, not $1"
    FLEET_K=$1
    FLEET_DIR=$RUN_DIR
    [[ -n "$FLEET_MCAST_PORT" ]] || FLEET_MCAST_PORT=$((40000 + BASHPID % 20000))
    trap _fleet_cleanup EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
}

# fleet_boot [--append ARGS] [other vm_boot options]: boot nodes 1..K at
# once, each in a background subshell with RUN_DIR=$RUN_DIR/nodeI (its own
# results/, serial.log, summary.txt, qemu.cmd), one vCPU, the user NIC's
# MAC set, the LAN NIC on this fleet's multicast group, and the command line
# "fleet_net_args I ARGS FLEET_NODE_APPEND[I]". Each node's log lines go to
# the scenario's log prefixed "nodeI: ". Waits for every node; 0 only if
# every boot returned 0. Each node's "boot" line is added to the scenario's
# summary.txt prefixed "nodeI: ". vm_boot scales --timeout by
# VM_TIMEOUT_SCALE as for any boot.
fleet_boot() {
    local k=$FLEET_K append="" args=() i rc=0
    ((k >= 1)) || die "fleet_boot: call fleet_init K first"
    while (($#)); do
        case "$1" in
            --append) append=$2; shift 2 ;;
            *) args+=("$1"); shift ;;
        esac
    done
    rm -f "$WWW/$FLEET_BARRIER_FILE"
    log "fleet: $k nodes, LAN $FLEET_LAN_PREFIX.0/24 on $FLEET_MCAST_GROUP:$FLEET_MCAST_PORT (127.0.0.1)"
    _FLEET_NODE_PIDS=()
    for ((i = 1; i <= k; i++)); do
        rm -rf "$FLEET_DIR/node$i"
        mkdir -p "$FLEET_DIR/node$i"
        (
            # Node I's own RUN_DIR, VM_SMP and NIC, in its subshell only.
            # shellcheck disable=SC2030,SC2034
            RUN_DIR=$FLEET_DIR/node$i
            echo "node $i of fleet $FLEET_DIR" >"$RUN_DIR/summary.txt"
            # One vCPU per guest: K guests share the host's cores.
            # shellcheck disable=SC2034  # read by vm_boot
            VM_SMP=1
            # shellcheck disable=SC2034  # read by vm_boot
            VM_NIC_EXTRA=",mac=$(fleet_wan_mac "$i")"
            vm_add_qemu_args \
                -netdev "socket,id=lan,mcast=$FLEET_MCAST_GROUP:$FLEET_MCAST_PORT,localaddr=127.0.0.1" \
                -device "virtio-net-pci,netdev=lan,mac=$(fleet_lan_mac "$i")"
            vm_boot "${args[@]}" --append "$(fleet_net_args "$i") $append ${FLEET_NODE_APPEND[i]:-}"
        ) > >(sed -u "s/^/node$i: /" >&2) 2>&1 &
        _FLEET_NODE_PIDS+=($!)
    done
    _fleet_barrier_watch &
    local bpid=$!
    _FLEET_BG_PIDS+=("$bpid")
    for ((i = 1; i <= k; i++)); do
        if wait "${_FLEET_NODE_PIDS[i - 1]}"; then
            echo 0 >"$FLEET_DIR/node$i/rc"
        else
            echo $? >"$FLEET_DIR/node$i/rc"
            rc=1
        fi
    done
    _FLEET_NODE_PIDS=()
    _fleet_kill_tree "$bpid"
    for ((i = 1; i <= k; i++)); do
        sed -n "s/^boot /node$i: boot /p" "$FLEET_DIR/node$i/summary.txt" >>"$FLEET_DIR/summary.txt"
        log "fleet: node $i: $(sed -n 's/^boot 1: \(.*\) in \([0-9.]*s\), results: \([a-z]*\),.*/\1 in \2, results: \3/p' "$FLEET_DIR/node$i/summary.txt")"
    done
    fleet_node 1
    return "$rc"
}

# _fleet_barrier_watch: release the fleet-lan hooks' barrier (a file on the
# bench's nginx) once every node has either printed "fleet-lan probed" on
# its console or ended.
_fleet_barrier_watch() {
    local i done_n
    while :; do
        done_n=0
        for ((i = 1; i <= FLEET_K; i++)); do
            if grep -qs 'METALTEST: fleet-lan probed' "$FLEET_DIR/node$i/serial.log" ||
                ! kill -0 "${_FLEET_NODE_PIDS[i - 1]}" 2>/dev/null; then
                done_n=$((done_n + 1))
            fi
        done
        if ((done_n == FLEET_K)); then
            echo "released $(date +%T)" >"$WWW/$FLEET_BARRIER_FILE"
            log "fleet: every node probed its peers: barrier released"
            return 0
        fi
        sleep 1
    done
}

# fleet_node I: the assert helpers look at node I's boot.
# shellcheck disable=SC2034  # read by the assert helpers
fleet_node() {
    RESULTS=$FLEET_DIR/node$1/results
    SERIAL=$FLEET_DIR/node$1/serial.log
}

# _fleet_kill_tree PID: TERM PID and every process below it (by pid: the
# node subshells' timeout and QEMU, a watcher's sleep).
_fleet_kill_tree() {
    local pid=$1 child
    for child in $(pgrep -P "$pid" 2>/dev/null); do
        _fleet_kill_tree "$child"
    done
    kill -TERM "$pid" 2>/dev/null || true
}

_fleet_cleanup() {
    local pid
    for pid in "${_FLEET_BG_PIDS[@]}" "${_FLEET_NODE_PIDS[@]}"; do
        _fleet_kill_tree "$pid"
    done
    _FLEET_BG_PIDS=()
    fleet_seed_stop
    fleet_origin_stop
}

# fleet_origin_start FILE...: an nginx of this scenario's own on
# 127.0.0.1:FLEET_ORIGIN_PORT (the first free port from 18080), serving
# copies of FILEs from $RUN_DIR/origin/www. Its access log
# ($FLEET_ORIGIN_DIR/access.log) has the request and $body_bytes_sent of
# every response. worker_shutdown_timeout 1s: fleet_origin_stop (QUIT)
# closes the listener at once and cuts the responses still running a second
# later; nginx logs those with the bytes they sent (a TERM would drop them
# from the log).
fleet_origin_start() {
    ((FLEET_K >= 1)) || die "fleet_origin_start: call fleet_init K first"
    FLEET_ORIGIN_DIR=$RUN_DIR/origin
    local www=$FLEET_ORIGIN_DIR/www f
    rm -rf "$FLEET_ORIGIN_DIR"
    mkdir -p "$www" "$FLEET_ORIGIN_DIR/tmp"
    chmod 755 "$FLEET_ORIGIN_DIR" "$www"
    for f in "$@"; do
        cp --sparse=always "$f" "$www/"
    done
    chmod 644 "$www"/*
    FLEET_ORIGIN_PORT=$(fleet_free_port $((18080 + BASHPID % 1000)))
    FLEET_ORIGIN_URL=http://10.0.2.2:$FLEET_ORIGIN_PORT/
    cat >"$FLEET_ORIGIN_DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
worker_shutdown_timeout 1s;
pid $FLEET_ORIGIN_DIR/nginx.pid;
error_log $FLEET_ORIGIN_DIR/error.log info;
events { worker_connections 128; }
http {
    log_format fleet '\$remote_addr [\$time_local] "\$request" \$status '
                     'body_bytes_sent=\$body_bytes_sent bytes_sent=\$bytes_sent '
                     'range="\$http_range" rt=\$request_time';
    access_log $FLEET_ORIGIN_DIR/access.log fleet;
    client_body_temp_path $FLEET_ORIGIN_DIR/tmp/body;
    proxy_temp_path $FLEET_ORIGIN_DIR/tmp/proxy;
    fastcgi_temp_path $FLEET_ORIGIN_DIR/tmp/fastcgi;
    uwsgi_temp_path $FLEET_ORIGIN_DIR/tmp/uwsgi;
    scgi_temp_path $FLEET_ORIGIN_DIR/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    etag on;
    max_ranges 1;
    server {
        listen 127.0.0.1:$FLEET_ORIGIN_PORT;
        root $www;
    }
}
EOF
    : >"$FLEET_ORIGIN_DIR/access.log"
    spawn_listening _FLEET_ORIGIN_PID "$FLEET_ORIGIN_PORT" 10 "$FLEET_ORIGIN_DIR/error.log" \
        "the fleet's origin nginx" \
        nginx -p "$FLEET_ORIGIN_DIR" -e "$FLEET_ORIGIN_DIR/error.log" -c "$FLEET_ORIGIN_DIR/nginx.conf"
    log "fleet: origin nginx on 127.0.0.1:$FLEET_ORIGIN_PORT (guests: $FLEET_ORIGIN_URL), pid $_FLEET_ORIGIN_PID"
}

fleet_origin_stop() {
    local pid=$_FLEET_ORIGIN_PID
    [[ -n "$pid" ]] || return 0
    # Ours only: the pid file and command line still say it is.
    if [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" != *"$FLEET_ORIGIN_DIR/nginx.conf"* ]]; then
        _FLEET_ORIGIN_PID=
        return 0
    fi
    _stop_pid _FLEET_ORIGIN_PID QUIT 100
    echo "stopped $(date +%T.%N | cut -c1-12)" >>"$FLEET_ORIGIN_DIR/stopped"
    log "fleet: origin nginx stopped"
}

# fleet_origin_stop_when SECS CMD...: in the background, stop the origin
# SECS seconds after CMD first succeeds (tried every 0.5 s, for at most
# 600 s x VM_TIMEOUT_SCALE). $FLEET_ORIGIN_DIR/stop-when says when, and how
# many nodes had finished their fetch (systemd's "Finished
# metalroot-fetch.service" on their consoles) when it stopped.
fleet_origin_stop_when() {
    local secs=$1
    shift
    (
        local t0=$SECONDS ok=""
        while ((SECONDS - t0 < 600 * VM_TIMEOUT_SCALE)); do
            "$@" && ok=1 && break
            sleep 0.5
        done
        if [[ -z "$ok" ]]; then
            echo "never: $*" >"$FLEET_ORIGIN_DIR/stop-when"
            exit 0
        fi
        log "fleet: '$*' after $((SECONDS - t0)) s: stopping the origin in $secs s"
        sleep "$secs"
        local fetched
        fetched=$(fleet_nodes_matching 'Finished .*metalroot-fetch\.service')
        fleet_origin_stop
        echo "stopped $((SECONDS - t0)) s after the watch began, $secs s after '$*'; nodes done fetching then: $fetched of $FLEET_K" \
            >"$FLEET_ORIGIN_DIR/stop-when"
        log "fleet: origin stopped; $fetched of $FLEET_K nodes had finished fetching"
    ) &
    _FLEET_BG_PIDS+=($!)
}

# fleet_origin_gets PATH: how many GETs of PATH the origin answered with
# 200 (the access log has a line once a response ended).
fleet_origin_gets() {
    grep -c "\"GET $1 HTTP/[0-9.]*\" 200 " "$FLEET_ORIGIN_DIR/access.log" 2>/dev/null || true
}

# fleet_nodes_matching ERE: how many nodes' serial logs match ERE.
fleet_nodes_matching() {
    local i n=0
    for ((i = 1; i <= FLEET_K; i++)); do
        grep -Eqs -- "$1" "$FLEET_DIR/node$i/serial.log" && n=$((n + 1))
    done
    echo "$n"
}

# fleet_origin_image_bytes [PATH]: the sum of body_bytes_sent over the
# origin's GETs of PATH (default /squashfs.img; not its .sha256 or .torrent).
fleet_origin_image_bytes() {
    local path=${1:-/squashfs.img}
    awk -v p="$path" '
        index($0, "\"GET " p " HTTP/") && match($0, /body_bytes_sent=[0-9]+/) {
            n += substr($0, RSTART + 16, RLENGTH - 16)
        }
        END { printf "%d\n", n }' "$FLEET_ORIGIN_DIR/access.log"
}

# fleet_torrent FILE: FILE.torrent beside FILE, made as an operator would:
# private (no DHT, no peer exchange outside the listed peers), 1 MiB pieces
# (-l 20), no tracker (the nodes are given their peers).
fleet_torrent() {
    local dir base
    dir=$(dirname "$1")
    base=$(basename "$1")
    (cd "$dir" && mktorrent -p -l 20 -o "$base.torrent" "$base") >"$RUN_DIR/mktorrent.log" 2>&1 ||
        { cat "$RUN_DIR/mktorrent.log" >&2; die "mktorrent failed for $1"; }
    echo "$1.torrent"
}

# fleet_torrent_bin: metalroot-torrent from this checkout's release build
# (METALTEST_TORRENT_BIN overrides); built with cargo when missing.
fleet_torrent_bin() {
    local bin=${METALTEST_TORRENT_BIN:-$REPO_ROOT/target/release/metalroot-torrent}
    if [[ ! -x "$bin" && -z "${METALTEST_TORRENT_BIN:-}" ]]; then
        log "fleet: no $bin: cargo build --release -p metalroot-torrent"
        (cd "$REPO_ROOT" && cargo build --release -p metalroot-torrent) >"$RUN_DIR/cargo-torrent.log" 2>&1 ||
            { tail -n 20 "$RUN_DIR/cargo-torrent.log" >&2; die "could not build metalroot-torrent"; }
    fi
    [[ -x "$bin" ]] || die "no metalroot-torrent at $bin"
    echo "$bin"
}

# fleet_seed_start TORRENT FILE [ARGS...]: `metalroot-torrent seed` on
# 127.0.0.1:FLEET_SEED_PORT (the first free port from 16881), the guests'
# 10.0.2.2:FLEET_SEED_PORT, peers allowed from 127.0.0.1; ARGS as
# --upload-limit BYTES_PER_SEC --for SECS. Its output goes to
# $RUN_DIR/seed/seed.log.
fleet_seed_start() {
    local torrent=$1 file=$2 bin dir=$RUN_DIR/seed
    shift 2
    ((FLEET_K >= 1)) || die "fleet_seed_start: call fleet_init K first"
    bin=$(fleet_torrent_bin)
    mkdir -p "$dir"
    FLEET_SEED_PORT=$(fleet_free_port $((16881 + BASHPID % 1000)))
    # --allow 127.0.0.1/32: QEMU's user network connects to the host from
    # 127.0.0.1, so every guest's connection comes from there (the seed
    # cannot reach the guests itself: they are behind the user network).
    echo "$bin seed --torrent $torrent --file $file --listen 127.0.0.1:$FLEET_SEED_PORT --allow 127.0.0.1/32 $*" >"$dir/cmd"
    spawn_listening _FLEET_SEED_PID "$FLEET_SEED_PORT" 20 "$dir/seed.log" \
        "metalroot-torrent seed (to listen on 127.0.0.1:$FLEET_SEED_PORT)" \
        "$bin" seed --torrent "$torrent" --file "$file" --listen "127.0.0.1:$FLEET_SEED_PORT" \
        --allow 127.0.0.1/32 "$@"
    log "fleet: seed on 127.0.0.1:$FLEET_SEED_PORT (guests: 10.0.2.2:$FLEET_SEED_PORT), pid $_FLEET_SEED_PID"
}

fleet_seed_stop() {
    [[ -n "$_FLEET_SEED_PID" ]] || return 0
    _stop_pid _FLEET_SEED_PID
    log "fleet: seed stopped"
}
