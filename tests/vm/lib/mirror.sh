# shellcheck shell=bash
# The Debian mirror the VM bench installs from: debootstrap's (build-root.sh),
# mkosi's apt sources (build-initrd.sh) and the bookworm-backports source for
# mkosi itself (setup-host.sh). Sourced, never executed.
#
#   apt_mirror [SUITE]           # main archive, e.g. http://mirror.example/debian
#   apt_security_mirror [SUITE]  # security archive, e.g. .../debian-security
#
# SUITE defaults to bookworm, the bench's release. Each prints one URI
# (without a trailing slash), or dies naming the files it read.
#
# Why: no mirror host is written into the bench. A machine that installs
# packages already names a mirror it may and should use (its network's own,
# a proxy, a snapshot) in its apt sources, so the bench takes that one.
# METALTEST_MIRROR and METALTEST_SECURITY_MIRROR override it.
#
# What is read, as apt reads it: /etc/apt/sources.list (one-line format),
# then /etc/apt/sources.list.d/*.list (one-line) and *.sources (deb822) in
# byte order; apt ignores other names (*.save, *.disabled-by-farm, ...) and so
# does this. The first enabled "deb" entry whose suites include SUITE
# (bookworm-security for the security archive) with component main wins.
# Entries signed by a key other than Debian's archive keys (Signed-By /
# [signed-by=...] not naming /usr/share/keyrings/debian-archive-*) belong to
# other vendors and are skipped; an entry without one relies on apt's trusted
# keys, Debian's archive keys on a Debian host.

if [[ -n "${_METALTEST_MIRROR_SOURCED:-}" ]]; then
    return 0
fi
_METALTEST_MIRROR_SOURCED=1

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Where apt's configuration lives; only the parser's tests point it elsewhere.
METALTEST_APT_DIR="${METALTEST_APT_DIR:-/etc/apt}"

apt_mirror() {
    local suite=${1:-bookworm}
    if [[ -n "${METALTEST_MIRROR:-}" ]]; then
        echo "${METALTEST_MIRROR%/}"
    else
        apt_source_uri "$suite" METALTEST_MIRROR
    fi
}

apt_security_mirror() {
    local suite=${1:-bookworm}-security
    if [[ -n "${METALTEST_SECURITY_MIRROR:-}" ]]; then
        echo "${METALTEST_SECURITY_MIRROR%/}"
    else
        apt_source_uri "$suite" METALTEST_SECURITY_MIRROR
    fi
}

# apt_source_files: the files apt reads its sources from, one a line, in
# apt's order.
apt_source_files() {
    # apt sorts the directory bytewise, not by the locale's collation.
    local LC_ALL=C f
    if [[ -f "$METALTEST_APT_DIR/sources.list" ]]; then
        echo "$METALTEST_APT_DIR/sources.list"
    fi
    for f in "$METALTEST_APT_DIR"/sources.list.d/*; do
        case "$f" in
            *.list | *.sources) if [[ -f "$f" ]]; then echo "$f"; fi ;;
        esac
    done
}

# apt_source_uri SUITE OVERRIDE_VAR: the URI of the first Debian entry for
# SUITE in the machine's sources; dies if there is none, naming the files
# read and the variable that would override them.
apt_source_uri() {
    local suite=$1 var=$2 files f uri
    mapfile -t files < <(apt_source_files)
    for f in "${files[@]}"; do
        uri="$(apt_source_uri_in "$f" "$suite")"
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return 0
        fi
    done
    die "no enabled Debian 'deb' entry for suite $suite with component main in" \
        "${files[*]:-$METALTEST_APT_DIR/sources.list or $METALTEST_APT_DIR/sources.list.d/*.list|*.sources (none exist)}:" \
        "add one to the apt sources, or set $var to the mirror's URI"
}

# apt_source_uri_in FILE SUITE: the URI of the first Debian entry for SUITE
# in FILE (deb822 if it ends in .sources, else one-line), or nothing.
apt_source_uri_in() {
    local format=list
    [[ "$1" == *.sources ]] && format=deb822
    awk -v format="$format" -v suite="$2" '
        # has(LIST, WORD): WORD is one of the blank-separated words of LIST.
        function has(list, word,   n, w, i) {
            n = split(list, w, /[ \t]+/)
            for (i = 1; i <= n; i++)
                if (w[i] == word) return 1
            return 0
        }
        # Debian archive keys, or none: apt then uses its trusted keys.
        function debian_key(key) {
            return key ~ /^[ \t]*$/ || key ~ /\/usr\/share\/keyrings\/debian-archive-/
        }
        function found(uri) {
            sub(/\/+$/, "", uri)
            print uri
            done = 1
            exit
        }
        # deb822: stanzas of "Field: value" lines, separated by blank lines;
        # a line starting with a blank continues the field before it, and
        # comment lines (#) may sit anywhere, also between fields. Field
        # names are case-insensitive.
        function end_stanza(   uris) {
            if (tolower(f["enabled"]) !~ /^[ \t]*no[ \t]*$/ &&
                has(f["types"], "deb") && has(f["suites"], suite) &&
                has(f["components"], "main") && debian_key(f["signed-by"])) {
                if (split(f["uris"], uris, " ")) found(uris[1])
            }
            split("", f)
            field = ""
        }
        format == "deb822" {
            if (/^#/) next
            if (/^[ \t]*$/) { end_stanza(); next }
            if (/^[ \t]/) { if (field != "") f[field] = f[field] " " $0; next }
            i = index($0, ":")
            if (!i) next
            field = tolower(substr($0, 1, i - 1))
            f[field] = substr($0, i + 1)
            next
        }
        # One-line: "deb [opt=value ...] URI SUITE COMPONENT...", a # starts
        # a comment anywhere on the line.
        format == "list" {
            sub(/#.*/, "")
            $0 = $0
            if ($1 != "deb") next
            key = ""
            j = 2
            if ($2 ~ /^\[/) {
                for (; j <= NF; j++) {
                    opt = $j
                    gsub(/[][]/, "", opt)
                    if (tolower(opt) ~ /^signed-by=/) key = substr(opt, 11)
                    if ($j ~ /\]$/) break
                }
                j++
            }
            if ($(j + 1) != suite || !debian_key(key)) next
            for (c = j + 2; c <= NF; c++)
                if ($c == "main") found($j)
        }
        END {
            if (format == "deb822" && !done) end_stanza()
        }
    ' "$1"
}
