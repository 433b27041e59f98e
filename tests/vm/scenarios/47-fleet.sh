# shellcheck shell=bash
# Fleet boot with BitTorrent (issue 18): three nodes boot the same command
# line at the same time and fetch one image from one origin, a host-side
# seed and each other. Helpers: lib/fleet.sh (the nodes' LAN, concurrent
# boots, the private origin, the seed); the guest hook fleet-lan (each node
# probes the others and waits for them before powering off).
#
#   fleet-three-nodes   origin (a private nginx) + the bench's nginx as a
#                       second mirror + a rate-limited seed; the origin is
#                       stopped once every node has its .torrent and the
#                       fetches run; every node boots the image, and the
#                       origin sent far less than three images

FLEET_NODES=3
# The seed's upload limit (bytes/s): slower than the nodes' own exchange,
# so the swarm matters.
FLEET_SEED_LIMIT=8000000
# The origin may send at most this much of the image, in % of one image
# (three independent boots: 300 %).
FLEET_ORIGIN_MAX_PCT=150

# _fleet_torrents_fetched: every node has fetched the .torrent from the
# origin (its access log has one 200 per node).
_fleet_torrents_fetched() {
    (($(fleet_origin_gets /squashfs.img.torrent) >= FLEET_K))
}

scenario_fleet_three_nodes() {
    fleet_init "$FLEET_NODES"
    # The bench's nginx ($WWW, port $HTTP_PORT) is the second mirror; the
    # origin serves copies of the same three files.
    publish_image
    local img=$WWW/squashfs.img torrent sum size
    torrent=$(fleet_torrent "$img")
    sum=$(cut -d' ' -f1 "$img.sha256")
    size=$(stat -c %s "$img")
    log "image: $size bytes, sha256 $sum, $(basename "$torrent") $(stat -c %s "$torrent") bytes"
    fleet_origin_start "$img" "$img.sha256" "$torrent"
    # --for: longer than the boots may take (stopped at the end anyway).
    fleet_seed_start "$torrent" "$img" --upload-limit "$FLEET_SEED_LIMIT" --for $((900 * VM_TIMEOUT_SCALE))

    local origin=$FLEET_ORIGIN_URL
    local append="metal.server=$origin metal.server=http://10.0.2.2:$HTTP_PORT/ metal.ram=overlay"
    append+=" metal.torrent=${origin}squashfs.img.torrent"
    append+=" metal.torrent-peers=10.0.2.2:$FLEET_SEED_PORT,$(fleet_peers 6881)"
    append+=" metal.torrent-allow=$FLEET_LAN_PREFIX.0/24,10.0.2.2/32 metal.torrent-timeout=20"
    append+=" $(fleet_lan_hook_args)"

    # Half way: 5 s after the last node fetched the .torrent, while the
    # pieces flow.
    fleet_origin_stop_when 5 _fleet_torrents_fetched
    local t0=$SECONDS
    # The image goes to RAM (metal.ram=overlay): ~100 MB of it, hence 1.5 GiB.
    fleet_boot --timeout 400 --mem 1536 --append "$append" || true
    log "fleet: $FLEET_NODES nodes booted in $((SECONDS - t0)) s"
    fleet_origin_stop

    local when
    when=$(cat "$FLEET_ORIGIN_DIR/stop-when" 2>/dev/null || echo "not stopped during the boot: not every node fetched the .torrent from it")
    check "the origin was stopped while a node was still fetching ($when)" \
        grep -Eq "nodes done fetching then: [0-$((FLEET_NODES - 1))] of" "$FLEET_ORIGIN_DIR/stop-when"

    local i
    for ((i = 1; i <= FLEET_NODES; i++)); do
        fleet_node "$i"
        echo "--- node $i ($(fleet_node_ip "$i")): $RESULTS"
        assert_report
        assert_system_state running degraded
        assert_report_mount LiveOS_rootfs / overlay
        assert_image_json ".sha256 == \"$sum\"" "node $i booted the image"
        # The fetch step's own lines (not the generator's about the arguments).
        assert_journal_contains 'metalroot-fetch\[[0-9]+\]: .*torrent:'
        _fleet_assert_lan "$i"
        assert_file_contains fleet/seed-active '^(active|activating)$'
    done

    local sent pct
    sent=$(fleet_origin_image_bytes /squashfs.img)
    pct=$((sent * 100 / size))
    log "fleet: the origin sent $sent bytes of the image ($pct % of one image of $size bytes; $FLEET_NODES independent boots: $((FLEET_NODES * 100)) %)"
    echo "fleet-three-nodes: image $size bytes, origin sent $sent bytes ($pct % of one image)" >>"$RUN_DIR/summary.txt"
    check "the origin sent $sent image bytes = $pct % of one image <= $FLEET_ORIGIN_MAX_PCT % (3 nodes alone: $((FLEET_NODES * size)) bytes)" \
        test "$pct" -le "$FLEET_ORIGIN_MAX_PCT"
}

# _fleet_assert_lan I: node I had both links (lan0 with its address, wan0
# with a DHCP lease from the user network) in its root, reached every other
# node on the LAN (the right MAC answered) and the host on 10.0.2.2, and its
# hook's barrier was released.
_fleet_assert_lan() {
    local i=$1 j
    assert_file_contains fleet/ip-addr "^lan0 +UP +$(fleet_node_ip "$i")/24"
    assert_file_contains fleet/ip-addr '^wan0 +UP +10\.0\.2\.15/24'
    for ((j = 1; j <= FLEET_K; j++)); do
        ((j == i)) && continue
        assert_file_contains fleet/peers.txt "^$(fleet_node_ip "$j") reached (open|refused) $(fleet_lan_mac "$j") "
    done
    assert_file_contains fleet/host.txt '^10\.0\.2\.2:[0-9]+ reached open$'
    assert_file_contains fleet/barrier '^released after'
}
