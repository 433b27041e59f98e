# shellcheck shell=bash
# Where a VM test run's time went. Sourced by tests/vm/run, or run by hand.
#
#   write_timings RUNS_DIR OUT [NAME...]
#
# writes a plain-text table with one line per boot of every scenario under
# RUNS_DIR (target/vm/; only the NAMEs if given): how the boot ended and its
# wall clock (summary.txt), the guest's own kernel / initrd / userspace split
# (systemd-analyze.txt) and how long each metalroot-*.service took, from its
# start job's "Starting" to its "Finished"/"Started"/"Failed" (the journal).
# After each scenario's boots, a total line (its time, boots, verdict); at the
# end, the run's sums and its 10 slowest boots. OUT empty or "-": stdout.
#
# Why: a whole run sits close to CI's time limit, and summary.txt says how
# long a boot took, not whether the kernel, the initrd, a wipe, a fetch or
# the root's userspace ate the time. This puts all of it on one page.
#
# The runner calls it at the end of every run, failed or interrupted ones
# included, so it must never end the caller: the work runs in a subshell with
# errexit, nounset and pipefail off, anything missing or unreadable shows as
# "-", and write_timings always returns 0. jq is optional (a fresh host has
# none before setup): without it the steps come from journal.txt instead of
# journal-metalroot.json.
#
# By hand: bash tests/vm/lib/timings.sh RUNS_DIR [OUT|- [NAME...]]

write_timings() {
    # A subshell: the caller's set -euo pipefail, traps, globbing options and
    # variables neither apply here nor change.
    (
        set +e +u +f +o pipefail
        trap - ERR
        shopt -s nullglob
        shopt -u failglob
        IFS=$' \t\n'
        _timings_write "$@"
    ) || true
    return 0
}

_timings_write() {
    local runs=${1:-} out=${2:-}
    set -- "${@:3}"
    local -a dirs=()
    local d name i j tmp
    if (($#)); then
        for name in "$@"; do
            [[ -d "$runs/$name" && "$name" != *.lockup && "$name" != _servers* ]] && dirs+=("$runs/$name")
        done
    else
        for d in "$runs"/*/; do
            d=${d%/}
            name=${d##*/}
            case "$name" in _servers* | *.lockup) continue ;; esac
            [[ -f "$d/summary.txt" ]] || continue
            dirs+=("$d")
        done
        # Run order (the run log's order): summary.txt is last written when
        # the scenario ends, so sort by its age, oldest first.
        for ((i = 1; i < ${#dirs[@]}; i++)); do
            for ((j = i; j > 0; j--)); do
                [[ "${dirs[j - 1]}/summary.txt" -nt "${dirs[j]}/summary.txt" ]] || break
                tmp=${dirs[j]}
                dirs[j]=${dirs[j - 1]}
                dirs[j - 1]=$tmp
            done
        done
    fi

    local src="journal-metalroot.json (jq), else journal.txt"
    command -v jq >/dev/null 2>&1 || src="journal.txt (no jq on this host)"
    local report
    report=$(
        {
            for d in "${dirs[@]}"; do
                _timings_scenario "$d"
            done
            # A first try whose retry left no directory (the run was
            # stopped during it) is still worth a mention.
            for d in "$runs"/*.lockup/; do
                d=${d%.lockup/}
                [[ -d "$d" ]] || printf 'L\t%s\t-\n' "${d##*/}"
            done
        } | _timings_format "$runs" "$src"
    )

    if [[ -z "$out" || "$out" == - ]]; then
        printf '%s\n' "$report"
        return 0
    fi
    [[ "$out" == */* ]] && mkdir -p -- "${out%/*}" 2>/dev/null
    # Via a temporary file, so a reader never sees half a table.
    if ! { printf '%s\n' "$report" >"$out.tmp.$$" && mv -f -- "$out.tmp.$$" "$out"; } 2>/dev/null; then
        rm -f -- "$out.tmp.$$" 2>/dev/null
        printf 'timings: could not write %s\n' "$out" >&2
    fi
    return 0
}

# _timings_summary FILE: summary.txt as tab-separated records:
#   B N HOW RESULTS WALL    per "boot N: HOW in WALLs, results: RESULTS, ..."
#   R VERDICT               "result: ..."
#   T SECONDS               "time: Ns"
_timings_summary() {
    [[ -r "$1" ]] || return 0
    awk '
        /^boot [0-9]+: / {
            n = $2; sub(/:$/, "", n)
            rest = $0; sub(/^boot [0-9]+: /, "", rest); gsub(/\t/, " ", rest)
            how = "-"; wall = "-"; kind = "-"
            # HOW may be "TIMED OUT after 300s": the first " in N.Ns" ends it.
            if (match(rest, / in [0-9]+(\.[0-9]+)?s(,|$)/)) {
                how = substr(rest, 1, RSTART - 1)
                wall = substr(rest, RSTART + 4, RLENGTH - 4); sub(/s,?$/, "", wall)
            }
            if (match(rest, /results: [a-z]+/)) kind = substr(rest, RSTART + 9, RLENGTH - 9)
            print "B\t" n "\t" how "\t" kind "\t" wall
        }
        /^result: / { v = $0; sub(/^result: /, "", v); gsub(/\t/, " ", v); print "R\t" v }
        /^time: [0-9]+s/ { t = $2; sub(/s$/, "", t); print "T\t" t }
    ' "$1" 2>/dev/null
}

# _timings_analyze FILE: "KERNEL<tab>INITRD<tab>USERSPACE" in seconds with one
# decimal, from `systemd-analyze time`; "-" for each part it does not show
# (no file, "Bootup is not yet finished", no initrd).
_timings_analyze() {
    local f=$1
    [[ -r "$f" ]] || f=/dev/null
    awk '
        # A systemd time span ("1min 2.345s", "712ms", "1h 2min 3s") in seconds.
        function span(s,   n, t, i, v, u, f, tot) {
            n = split(s, t, " ")
            if (n == 0) return "-"
            tot = 0
            for (i = 1; i <= n; i++) {
                if (!match(t[i], /^[0-9]+(\.[0-9]+)?/)) return "-"
                v = substr(t[i], 1, RLENGTH) + 0; u = substr(t[i], RLENGTH + 1)
                if (u == "s") f = 1
                else if (u == "ms") f = 0.001
                else if (u == "us" || u == "\302\265s") f = 0.000001
                else if (u == "min") f = 60
                else if (u == "h") f = 3600
                else if (u == "d") f = 86400
                else return "-"
                tot += v * f
            }
            return sprintf("%.1f", tot)
        }
        /Startup finished in / {
            line = $0; sub(/.*Startup finished in /, "", line); sub(/ = .*/, "", line)
            n = split(line, part, / \+ /)
            for (i = 1; i <= n; i++)
                if (match(part[i], / \([a-z]+\)$/))
                    val[substr(part[i], RSTART + 2, RLENGTH - 3)] = span(substr(part[i], 1, RSTART - 1))
        }
        END {
            k = ("kernel" in val) ? val["kernel"] : "-"
            i = ("initrd" in val) ? val["initrd"] : "-"
            u = ("userspace" in val) ? val["userspace"] : "-"
            print k "\t" i "\t" u
        }
    ' "$f" 2>/dev/null || printf -- '-\t-\t-\n'
}

# _timings_steps RESULTS_DIR: "wipe 15.2 layout 17.2 ..." in start order, or
# "-". A step that failed shows its result ("3.1(failed)"); one still running
# when the journal was saved shows a lower bound (">40.1", up to the last
# entry); one that ended without starting shows why ("(dependency)", or
# "(skipped)" for a failed condition).
_timings_steps() {
    local dir=$1 events=""
    # systemd's catalog IDs (sd-messages.h, systemd.catalog) of PID 1's job
    # messages: a start job began; it ended with result "done"; it ended
    # with any other result (JOB_RESULT: failed, timeout, dependency, ...).
    local starting=7d4958e842da4a758f6c1cdc7b36dcc5
    local started=39f53479d3a045ac8e11786248231fbf
    local failed=be02cf6855d2428ba40df7e9d022f03d
    if command -v jq >/dev/null 2>&1 && [[ -s "$dir/journal-metalroot.json" ]]; then
        # -R and fromjson?: a truncated or garbled line is skipped instead
        # of ending jq. Every entry's timestamp is kept (kind "-"): the last
        # one bounds a step that never ended.
        events=$(jq -R -r --arg s "$starting" --arg d "$started" --arg f "$failed" '
            fromjson? | objects
            | ((.__MONOTONIC_TIMESTAMP | strings | tonumber?) // empty) as $t
            | ((.MESSAGE_ID | strings) // "") as $m
            | ((.UNIT | strings) // "") as $u
            | if ($m == $s or $m == $d or $m == $f)
                 and ($u | startswith("metalroot-") and endswith(".service"))
              then [$t, (if $m == $s then "S" else "E" end), $u,
                    ($u | ltrimstr("metalroot-") | rtrimstr(".service")),
                    ((.JOB_RESULT | strings) // (if $m == $f then "failed" else "done" end))]
              else [$t, "-", "-", "-", "-"]
              end
            | map(tostring) | @tsv
        ' "$dir/journal-metalroot.json" 2>/dev/null)
    fi
    if ! grep -q $'\t[SE]\t' <<<"$events" && [[ -s "$dir/journal.txt" ]]; then
        local units=/dev/null
        [[ -r "$dir/initrd/systemctl-cat-metalroot.txt" ]] && units="$dir/initrd/systemctl-cat-metalroot.txt"
        events=$(_timings_journal_txt "$dir/journal.txt" "$units")
    fi
    printf '%s\n' "$events" | awk -F'\t' '
        $1 ~ /^[0-9]+(\.[0-9]+)?$/ {
            t = $1 + 0
            if (t > last) last = t
            if ($2 != "S" && $2 != "E") next
            n++; ts[n] = t; kd[n] = $2; ky[n] = $3; nm[n] = $4; rs[n] = $5
        }
        END {
            # In time order, stable (the JSON is merged from the initrd and
            # root journals); a boot has a few dozen of these at most.
            for (i = 1; i <= n; i++) o[i] = i
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && ts[o[j - 1]] > ts[o[j]]; j--) {
                    x = o[j]; o[j] = o[j - 1]; o[j - 1] = x
                }
            m = 0
            for (i = 1; i <= n; i++) {
                e = o[i]
                if (kd[e] == "S") {
                    m++; sn[m] = nm[e]; st[m] = ts[e]; val[m] = ""; open[ky[e]] = m
                } else if (ky[e] in open) {
                    k = open[ky[e]]; delete open[ky[e]]
                    d = sprintf("%.1f", (ts[e] - st[k]) / 1000000)
                    val[k] = (rs[e] == "done") ? d : d "(" rs[e] ")"
                } else {
                    m++; sn[m] = nm[e]
                    val[m] = (rs[e] == "done") ? "(skipped)" : "(" rs[e] ")"
                }
            }
            for (k in open) {
                i = open[k]
                val[i] = (last > st[i]) ? sprintf(">%.1f", (last - st[i]) / 1000000) : "?"
            }
            s = ""
            for (i = 1; i <= m; i++) s = s (i > 1 ? " " : "") sn[i] " " val[i]
            print (m ? s : "-")
        }
    '
}

# _timings_journal_txt JOURNAL_TXT UNITS_TXT: the same event records as the
# jq filter, from `journalctl -o short-monotonic` text. systemd names a unit
# in these messages as "metalroot-wipe.service - metalroot: wipe ..." or by
# the name alone, or (older systemd, StatusUnitFormat=description) by its
# description only; UNITS_TXT (the initrd's `systemctl cat 'metalroot*'`)
# maps a description back to its unit.
_timings_journal_txt() {
    awk -v units="$2" '
        BEGIN {
            while ((getline l < units) > 0) {
                if (l ~ /^# \/.*\/metalroot-[^\/ ]*\.service$/) { cur = l; sub(/.*\//, "", cur) }
                else if (cur != "" && l ~ /^Description=/) { byDesc[substr(l, 13)] = cur; cur = "" }
            }
        }
        function short(u) { sub(/^metalroot-/, "", u); sub(/\.service$/, "", u); return u }
        # A description with no unit to map it to: the step named by its
        # words (these mirror the descriptions in src/plan/).
        function guess(x) {
            if (x ~ /wipe local disks/) return "wipe"
            if (x ~ /local RAID layout/) return "layout"
            if (x ~ /dry run/) return "dry-run"
            if (x ~ /iSCSI login from the firmware/) return "iscsi-firmware"
            if (x ~ /iSCSI login to/) return "iscsi"
            if (x ~ /multipath/) return "multipath"
            if (x ~ /unlock LUKS/) return "luks"
            if (x ~ /activate LVM/) return "lvm"
            if (x ~ /fetch the root image/) return "fetch"
            if (x ~ /root filesystem at/) return "sysroot"
            if (x ~ /hand the assembled system/) return "handover"
            if (x ~ /trap shell/) return "trap"
            split(x, w, " "); return w[2]
        }
        {
            if (!match($0, /^\[ *[0-9]+(\.[0-9]+)?\]/)) next
            t = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", t); us = sprintf("%.0f", t * 1000000)
            p = index($0, " systemd[1]: ")
            kind = ""; res = ""; x = ""
            if (p) {
                msg = substr($0, p + 13)
                if (msg ~ /^Starting /) { kind = "S"; x = substr(msg, 10); sub(/\.\.\.$/, "", x) }
                else if (msg ~ /^(Finished|Started) /) { kind = "E"; res = "done"; x = msg; sub(/^[A-Za-z]+ /, "", x) }
                else if (msg ~ /^Failed to start /) { kind = "E"; res = "failed"; x = substr(msg, 17) }
                else if (msg ~ /^Timed out starting /) { kind = "E"; res = "timeout"; x = substr(msg, 20) }
                else if (msg ~ /^Dependency failed for /) { kind = "E"; res = "dependency"; x = substr(msg, 23) }
                else if (msg ~ /^Assertion failed for /) { kind = "E"; res = "assert"; x = substr(msg, 22) }
                else if (msg ~ /^Condition check resulted in .* being skipped\.$/) {
                    kind = "E"; res = "done"; x = substr(msg, 30); sub(/ being skipped\.$/, "", x)
                }
                if (kind == "E") sub(/\.$/, "", x)
            }
            key = ""
            if (x ~ /^metalroot-[^ ]*\.service/) {
                match(x, /^metalroot-[^ ]*\.service/); key = substr(x, 1, RLENGTH); name = short(key)
            } else if (x ~ /^metalroot: /) {
                if (x in byDesc) { key = byDesc[x]; name = short(key) } else { key = x; name = guess(x) }
            }
            if (kind == "" || key == "") print us "\t-\t-\t-\t-"
            else print us "\t" kind "\t" key "\t" name "\t" res
        }
    ' "$1" 2>/dev/null
}

# _timings_scenario DIR: the records _timings_format lays out, tab-separated:
#   B SCENARIO BOOT RESULT WALL KERNEL INITRD USERSPACE STEPS   per boot
#   T SCENARIO all VERDICT TIME - - - NOTE                       its total
#   L SCENARIO TIME                                              a lockup's first try
_timings_scenario() {
    local d=$1 name=${1##*/}
    local -A how=() kind=() wall=() seen=()
    local verdict="" secs=- typ a b c e n r max=0
    while IFS=$'\t' read -r typ a b c e; do
        case "$typ" in
            B) how[$a]=$b kind[$a]=$c wall[$a]=$e seen[$a]=1 ;;
            R) verdict=$a ;;
            T) secs=$a ;;
        esac
    done < <(_timings_summary "$d/summary.txt")
    # A boot the runner did not get to write about (an interrupted run)
    # still has its results directory.
    [[ -d "$d/results" ]] && seen[1]=1
    for r in "$d"/results.*/; do
        r=${r%/}
        n=${r##*/results.}
        [[ "$n" =~ ^[0-9]+$ ]] && seen[$n]=1
    done
    for n in "${!seen[@]}"; do ((n > max)) && max=$n; done

    local boots=0 res dir an steps
    for ((n = 1; n <= max; n++)); do
        [[ -n "${seen[$n]:-}" ]] || continue
        boots=$((boots + 1))
        res=${how[$n]:--}
        [[ -n "${kind[$n]:-}" && "${kind[$n]}" != - ]] && res+=" (${kind[$n]})"
        dir="$d/results"
        ((n > 1)) && dir="$d/results.$n"
        an=$(_timings_analyze "$dir/systemd-analyze.txt")
        [[ "$an" == *$'\t'*$'\t'* ]] || an=$'-\t-\t-'
        steps=-
        [[ -d "$dir" ]] && steps=$(_timings_steps "$dir")
        [[ -n "$steps" ]] || steps=-
        printf 'B\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "$res" "${wall[$n]:--}" "$an" "$steps"
    done

    local short=- note
    [[ -n "$verdict" ]] && short=${verdict%% *}
    local plural=s
    ((boots == 1)) && plural=
    note="$boots boot$plural, ${verdict:-no result line (scenario unfinished?)}"
    if [[ -d "$d.lockup" ]]; then
        local lsecs=- lverdict="" lboots=0
        while IFS=$'\t' read -r typ a b c e; do
            case "$typ" in
                B) lboots=$((lboots + 1)) ;;
                R) lverdict=$a ;;
                T) lsecs=$a ;;
            esac
        done < <(_timings_summary "$d.lockup/summary.txt")
        note+="; retried after a guest kernel lockup, first try ($lboots boot$( ((lboots == 1)) || echo s), ${lsecs}s, ${lverdict:-no result}) in $name.lockup"
        printf 'L\t%s\t%s\n' "$name" "$lsecs"
    fi
    printf 'T\t%s\tall\t%s\t%s\t\t\t\t%s\n' "$name" "$short" "$secs" "$note"
}

# _timings_format RUNS_DIR SOURCE: lays out _timings_scenario's records on
# stdin as the aligned table, then the run's sums and slowest boots.
_timings_format() {
    awk -F'\t' -v runs="$1" -v src="$2" -v now="$(printf '%(%Y-%m-%d %H:%M:%S)T' -1)" '
        function add(line,   nf, f, i) {
            nrow++; rows[nrow] = line
            nf = split(line, f, "\t")
            for (i = 1; i < nf; i++) if (length(f[i]) > w[i]) w[i] = length(f[i])
        }
        # Numbers (wall, kernel, initrd, userspace) right-aligned.
        function cell(s, i) {
            return (i >= 4 && i <= 7) ? sprintf("%" w[i] "s", s) : sprintf("%-" w[i] "s", s)
        }
        function show(line,   nf, f, i, s) {
            if (line == "") { print ""; return }
            nf = split(line, f, "\t"); s = ""
            for (i = 1; i < nf; i++) s = s cell(f[i], i) "  "
            s = s f[nf]
            sub(/ +$/, "", s)
            print s
        }
        function num(s) { return s ~ /^[0-9]+(\.[0-9]+)?$/ }
        function mins(s) { return sprintf("%.1f s (%.1f min)", s, s / 60) }
        BEGIN { add("scenario\tboot\tresult\twall\tkernel\tinitrd\tuserspace\tmetalroot steps (s)") }
        $1 == "B" && NF >= 9 {
            add($2 "\t" $3 "\t" $4 "\t" $5 "\t" $6 "\t" $7 "\t" $8 "\t" $9)
            boots++
            if (num($5)) { walls += $5; nw++; sw[nw] = $5 + 0; sname[nw] = $2 " boot " $3; sres[nw] = $4 }
            if (num($6) && num($7) && num($8)) { ksum += $6; isum += $7; usum += $8; nsa++ }
            k = split($9, t, " ")
            for (i = 1; i + 1 <= k; i += 2)
                if (t[i + 1] ~ /^[0-9]/) {
                    if (!(t[i] in ssum)) sorder[++ns] = t[i]
                    ssum[t[i]] += t[i + 1] + 0; scnt[t[i]]++
                }
            next
        }
        $1 == "T" {
            add($2 "\t" $3 "\t" $4 "\t" $5 "\t\t\t\t" $9); add("")
            nscen++
            if ($4 == "PASS") npass++; else if ($4 == "FAIL") nfail++; else nunk++
            if (num($5)) stime += $5; else stimeunk++
            next
        }
        $1 == "L" { nlock++; lnames = lnames (nlock > 1 ? ", " : "") $2; if (num($3)) ltime += $3; next }
        END {
            print "VM test timings of " runs " (" now "), in seconds; steps: a metalroot-*.service start job, begun to ended, from " src
            print ""
            if (nscen == 0) { print "no scenario directories with a summary.txt"; exit 0 }
            for (r = 1; r <= nrow; r++) show(rows[r])
            v = nscen " scenarios (" npass + 0 " PASS"
            if (nfail) v = v ", " nfail " FAIL"
            if (nunk) v = v ", " nunk " unfinished"
            print v "), " boots + 0 " boots"
            if (nlock) print "retried after a guest kernel lockup: " lnames " (first tries took " ltime + 0 " s more, not in the sums below)"
            print "sum of scenario times: " mins(stime) (stimeunk ? " (" stimeunk " without a time: line)" : "")
            print "sum of boot walls:     " mins(walls) (nw < boots ? " (" boots - nw " boots without a wall)" : "") \
                  "; the scenarios outside their boots: " sprintf("%.1f s", stime - walls)
            if (nsa) printf "guest systemd-analyze, summed over %d boots: kernel %.1f, initrd %.1f, userspace %.1f s\n", nsa, ksum, isum, usum
            if (ns) {
                # Steps by total time, largest first.
                for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++)
                    if (ssum[sorder[j]] > ssum[sorder[i]]) { x = sorder[i]; sorder[i] = sorder[j]; sorder[j] = x }
                s = ""
                for (i = 1; i <= ns; i++) s = s sprintf("%s%s %.1f (%d)", i > 1 ? ", " : "", sorder[i], ssum[sorder[i]], scnt[sorder[i]])
                print "metalroot steps, summed over boots (s, boots): " s
            }
            if (nw) {
                print ""
                print "slowest boots:"
                lim = nw < 10 ? nw : 10
                for (k = 1; k <= lim; k++) {
                    b = 0
                    for (i = 1; i <= nw; i++) if (!used[i] && (b == 0 || sw[i] > sw[b])) b = i
                    used[b] = 1; top[k] = b
                    if (length(sname[b]) > wn) wn = length(sname[b])
                }
                for (k = 1; k <= lim; k++) {
                    b = top[k]
                    printf "  %7.1f  %-" wn "s  %s\n", sw[b], sname[b], sres[b]
                }
            }
        }
    '
}

# Run by hand: bash tests/vm/lib/timings.sh RUNS_DIR [OUT|- [NAME...]]
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    if (($# < 1)) || [[ "$1" == -h || "$1" == --help ]]; then
        echo "usage: bash ${0##*/} RUNS_DIR [OUT|- [NAME...]]   (the table on stdout without OUT)" >&2
        exit 2
    fi
    write_timings "$@"
fi
