#!/bin/bash
# Self-test of tests/vm/faultserver.py with curl. Needs no root and no VM:
#   tests/vm/faultserver_test.sh
# Starts the server on a free port of 127.0.0.1 over a temporary directory,
# checks plain, range, conditional and HEAD requests and every fault kind,
# and ends with "N passed, N failed".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"
SERVER_PID=
# Keep the script's own exit status: the killed server's 143 must not
# become ours.
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT

mkdir -p "$TMP/www/sub"
head -c 300000 /dev/urandom >"$TMP/www/blob"
echo hello >"$TMP/www/sub/small.txt"

python3 "$HERE/faultserver.py" --root "$TMP/www" --port 0 --port-file "$TMP/port" \
    2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 50); do [[ -s "$TMP/port" ]] && break; sleep 0.1; done
[[ -s "$TMP/port" ]] || { cat "$TMP/server.log"; echo "server did not start"; exit 1; }
BASE="http://127.0.0.1:$(cat "$TMP/port")"

PASS=0
FAIL=0
check() { # check NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then
        PASS=$((PASS + 1))
        echo "ok   $name"
    else
        FAIL=$((FAIL + 1))
        echo "FAIL $name"
    fi
}
control() { curl -fsS -X POST --data "$1" "$BASE/_control" >/dev/null; }
reset() { curl -fsS -X POST "$BASE/_reset" >/dev/null; }
header() { # header FILE NAME -> value
    grep -i "^$2:" "$1" | head -n1 | cut -d' ' -f2- | tr -d '\r'
}
status() { head -n1 "$1" | cut -d' ' -f2; }
same() { cmp -s "$1" "$2"; }
eq() { [[ "$1" == "$2" ]]; }

# 1. plain GET
curl -fsS -D "$TMP/h1" -o "$TMP/b1" "$BASE/blob"
check "GET returns the file" same "$TMP/b1" "$TMP/www/blob"
check "GET Content-Length" eq "$(header "$TMP/h1" Content-Length)" 300000
check "GET Accept-Ranges" eq "$(header "$TMP/h1" Accept-Ranges)" bytes
ETAG="$(header "$TMP/h1" ETag)"
LM="$(header "$TMP/h1" Last-Modified)"
check "GET has ETag and Last-Modified" test -n "$ETAG" -a -n "$LM"

# 2. Range
curl -fsS -D "$TMP/h2" -o "$TMP/b2" -H 'Range: bytes=100-199' "$BASE/blob"
check "Range -> 206" eq "$(status "$TMP/h2")" 206
check "Range Content-Range" eq "$(header "$TMP/h2" Content-Range)" "bytes 100-199/300000"
check "Range body" same "$TMP/b2" <(tail -c +101 "$TMP/www/blob" | head -c 100)
curl -fsS -o "$TMP/b2b" -H 'Range: bytes=-10' "$BASE/blob"
check "suffix Range" same "$TMP/b2b" <(tail -c 10 "$TMP/www/blob")
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Range: bytes=400000-' "$BASE/blob")
check "Range past the end -> 416" eq "$code" 416

# 3. If-Range / If-None-Match
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-9' -H "If-Range: $ETAG" "$BASE/blob")
check "If-Range matching ETag -> 206" eq "$code" 206
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-9' -H "If-Range: $LM" "$BASE/blob")
check "If-Range matching date -> 206" eq "$code" 206
code=$(curl -sS -o "$TMP/b3" -w '%{http_code}' -H 'Range: bytes=0-9' -H 'If-Range: "stale"' "$BASE/blob")
check "If-Range stale -> 200 full" eq "$code:$(stat -c %s "$TMP/b3")" 200:300000
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$BASE/blob")
check "If-None-Match -> 304" eq "$code" 304

# 4. HEAD
curl -fsS -I -o "$TMP/h4" "$BASE/blob"
check "HEAD Content-Length" eq "$(header "$TMP/h4" Content-Length)" 300000
code=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/nope")
check "missing file -> 404" eq "$code" 404
code=$(curl -sS -o /dev/null -w '%{http_code}' --path-as-is "$BASE/../etc/passwd")
check "path traversal refused" eq "$code" 404

# 5. cut, then resume with curl -C -
reset
control '{"path": "/blob", "cut_at": 100000}'
rc=0
curl -fsS -o "$TMP/b5" "$BASE/blob" 2>/dev/null || rc=$?
check "cut: curl reports a partial transfer (18)" eq "$rc" 18
check "cut: exactly 100000 bytes arrived" eq "$(stat -c %s "$TMP/b5")" 100000
curl -fsS -C - -o "$TMP/b5" "$BASE/blob"
check "resume after cut completes the file" same "$TMP/b5" "$TMP/www/blob"
curl -fsS "$BASE/_stats" >"$TMP/stats5"
check "stats: the resume asked for a range" \
    eq "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["log"][-1]["range"])' <"$TMP/stats5")" "bytes=100000-"
check "stats: body bytes = file size" \
    eq "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["body_bytes"])' <"$TMP/stats5")" 300000

# HEAD does not use up a cut rule
reset
control '{"path": "/blob", "cut_at": 10}'
curl -fsS -I -o /dev/null "$BASE/blob"
rc=0
curl -fsS -o /dev/null "$BASE/blob" 2>/dev/null || rc=$?
check "cut rule survives a HEAD" eq "$rc" 18

# 6. corrupt
reset
control '{"corrupt_at": 5000, "corrupt_len": 3}'
curl -fsS -o "$TMP/b6" "$BASE/blob"
# cmp exits 1 when the files differ, which is the point here.
cmp -l "$TMP/b6" "$TMP/www/blob" >"$TMP/cmp6" || true
diffs=$(wc -l <"$TMP/cmp6")
first=$(awk 'NR == 1 {print $1}' "$TMP/cmp6")
check "corrupt: 3 bytes differ from offset 5000" eq "$diffs:$first" "3:5001"
curl -fsS -o "$TMP/b6b" -H 'Range: bytes=4000-5999' "$BASE/blob"
check "corrupt used up (fail_count 1)" same "$TMP/b6b" <(tail -c +4001 "$TMP/www/blob" | head -c 2000)

# 7. status
reset
control '{"path": "/sub/", "status": 503, "fail_count": 2, "retry_after": 1}'
c1=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/sub/small.txt")
c2=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/sub/small.txt")
c3=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/sub/small.txt")
check "status: 503, 503, then 200" eq "$c1 $c2 $c3" "503 503 200"
c4=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/blob")
check "status rule limited to its prefix" eq "$c4" 200

# 8. stall
reset
control '{"stall_at": 1000, "stall_secs": 3}'
rc=0
curl -fsS -o "$TMP/b8" --max-time 1 "$BASE/blob" 2>/dev/null || rc=$?
check "stall: client times out (28) after the first 1000 bytes" eq "$rc:$(stat -c %s "$TMP/b8")" 28:1000

# 9. throttle
reset
control '{"throttle_bps": 500000, "fail_count": -1}'
t=$(curl -fsS -o "$TMP/b9" -w '%{time_total}' "$BASE/blob")
check "throttle: 300 kB at 500 kB/s takes >= 0.5 s" python3 -c "import sys; sys.exit(0 if $t >= 0.5 else 1)"
check "throttle: content intact" same "$TMP/b9" "$TMP/www/blob"

# 10. bad control input
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data '{"bogus": 1}' "$BASE/_control")
check "unknown fault key -> 400" eq "$code" 400

# 11. stats count requests; reset zeroes them
reset
curl -fsS -o /dev/null "$BASE/sub/small.txt"
curl -fsS -o /dev/null "$BASE/sub/small.txt"
curl -fsS "$BASE/_stats" >"$TMP/stats11"
check "stats: 2 requests, 12 body bytes" \
    eq "$(python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["requests"], s["body_bytes"])' <"$TMP/stats11")" "2 12"

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
