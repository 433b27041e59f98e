# shellcheck shell=bash
# iSCSI (issue 7): root on a LUN of the host's tgtd, with mutual CHAP, a
# wrong secret, a dead second target and a target that comes up late. The
# LUN holds the Debian root as an ext4 filesystem (root=iscsi:…, the whole
# LUN is the root).

ISCSI_IQN=iqn.2026-11.metaltest:root
ISCSI_NET="ip=dhcp rd.neednet=1 rd.iscsi.initiator=iqn.2026-11.metaltest:node1"

iscsi_root_lun() {
    vm_copy_image "$ROOT_EXT4" lunroot
}

# no_secret_but_cmdline WORD: WORD is in no journal line except the echoes
# of the command line by the kernel and by dracut-cmdline, which metalroot
# cannot hide (a secret on the command line is in /proc/cmdline): the whole
# line, the parameters the kernel does not know ("Unknown kernel command
# line parameters", e.g. netroot=), and those it hands to /init as its
# environment (the indented lines after "with environment:").
no_secret_but_cmdline() {
    check "secret $1 only in the kernel's command line lines" \
        bash -c "! grep -F '$1' '$RESULTS/journal.txt' | grep -vE 'Kernel command line|Command line:|Using kernel command line parameters|kernel: Unknown kernel command line parameters|kernel:     [^ ]'"
}

# no_secret_anywhere WORD: no_secret_but_cmdline, and WORD is in none of
# what the booted root can show: metalroot's units as `systemctl cat` printed
# them in the initrd (the test add-on's snapshot before switch-root), every
# process's command line in the initrd and in the root, the root's fstab and
# iscsid.conf.
no_secret_anywhere() {
    no_secret_but_cmdline "$1"
    check "the initrd's metalroot units were captured" test -s "$RESULTS/initrd/systemctl-cat-metalroot.txt"
    local f
    for f in initrd/systemctl-cat-metalroot.txt initrd/proc-cmdlines.txt proc-cmdlines.txt fstab; do
        check "secret $1 not in $f" bash -c "[[ -f '$RESULTS/$f' ]] && ! grep -qF -- '$1' '$RESULTS/$f'"
    done
    check "secret $1 not in the root's iscsid.conf" bash -c "! grep -qF -- '$1' '$RESULTS/iscsid.conf' 2>/dev/null"
}

# iscsi_discovery_status PORT: the status (class and detail, hex) tgtd
# answers to a SendTargets discovery login without authentication; 0201
# is "authentication failed".
iscsi_discovery_status() {
    python3 - "$1" <<'PY'
import socket, sys
data = b"InitiatorName=iqn.2026-11.metaltest:probe\0SessionType=Discovery\0AuthMethod=None\0"
bhs = bytearray(48)
bhs[0], bhs[1] = 0x43, 0x81  # immediate Login request; T, CSG 0 -> NSG 1
bhs[5:8] = len(data).to_bytes(3, "big")
bhs[8:14] = bytes.fromhex("00023d000001")  # ISID
bhs[16:20] = (1).to_bytes(4, "big")  # ITT
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(bytes(bhs) + data + b"\0" * (-len(data) % 4))
rsp = b""
while len(rsp) < 48:
    chunk = s.recv(48 - len(rsp))
    if not chunk:
        break
    rsp += chunk
print(f"{rsp[36]:02x}{rsp[37]:02x}" if len(rsp) == 48 else "none")
PY
}

scenario_iscsi_chap() {
    tgt_add_target 1 "$ISCSI_IQN" "$(iscsi_root_lun)"
    tgt_set_chap 1 nodeuser s3cr3t-node-pw
    tgt_set_mutual_chap 1 tgtuser s3cr3t-tgt-pw
    vm_boot --append "root=iscsi:nodeuser:s3cr3t-node-pw:tgtuser:s3cr3t-tgt-pw@10.0.2.2::3260:1:$ISCSI_IQN $ISCSI_NET" || true
    assert_report
    assert_report_mount "~^/dev/sd" / ext4
    assert_journal_contains "logged in to $ISCSI_IQN at 10.0.2.2:3260"
    no_secret_but_cmdline s3cr3t-node-pw
    no_secret_but_cmdline s3cr3t-tgt-pw
    assert_file_not_contains fstab "s3cr3t"
}

scenario_iscsi_wrong_secret() {
    tgt_add_target 1 "$ISCSI_IQN" "$(iscsi_root_lun)"
    tgt_set_chap 1 nodeuser right-password
    vm_boot --timeout 360 --append "root=iscsi:nodeuser:s3cr3t-wrong-pw@10.0.2.2::3260:1:$ISCSI_IQN rd.iscsi.login_retry_max=2 $ISCSI_NET" || true
    assert_emergency
    assert_journal_contains "could not log in to $ISCSI_IQN after 2 attempts"
    assert_journal_contains "iscsiadm -m node -T $ISCSI_IQN -p 10.0.2.2:3260 --login"
    no_secret_but_cmdline s3cr3t-wrong-pw
}

scenario_iscsi_two_targets_one_dead() {
    tgt_add_target 1 "$ISCSI_IQN" "$(iscsi_root_lun)"
    # Nothing listens on 3261: the second target never answers.
    vm_boot --append "root=iscsi:10.0.2.2::3260:1:$ISCSI_IQN netroot=iscsi:10.0.2.2::3261::iqn.2026-11.metaltest:dead $ISCSI_NET" || true
    assert_report
    assert_report_mount "~^/dev/sd" / ext4
    assert_journal_contains "logged in to $ISCSI_IQN"
    # The dead target's login was still trying when the node switched root:
    # nothing waited for it.
    assert_journal_contains "Starting metalroot-iscsi-2.service"
    assert_journal_not_contains "Finished metalroot-iscsi-2.service"
}

scenario_iscsi_target_late() {
    local lun
    lun="$(iscsi_root_lun)"
    # The target comes up 30 s after power-on.
    (sleep 30 && tgt_add_target 1 "$ISCSI_IQN" "$lun") &
    vm_boot --append "root=iscsi:10.0.2.2::3260:1:$ISCSI_IQN $ISCSI_NET" || true
    wait || true
    assert_report
    assert_report_mount "~^/dev/sd" / ext4
    assert_journal_contains "logged in to $ISCSI_IQN"
    # The login kept trying until the target came up (iscsiadm's own retries
    # or metalroot's): it took well over the few seconds a live target needs.
    local waited
    waited=$(awk '
        function ts(   t) { t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); return t + 0 }
        /Starting metalroot-iscsi-1.service/ { s = ts() }
        /logged in to iqn/ { printf "%d", ts() - s; exit }
    ' "$RESULTS/journal.txt")
    check "the login waited for the late target (${waited:-?} s)" test "${waited:-0}" -ge 10
}

# Seed 001's discovery: no portal on the target, SendTargets discovery with
# (mutual) discovery CHAP, then the session with its own CHAP. tgtd's global
# account guards discovery only.
scenario_iscsi_discovery_chap() {
    tgt_add_target 1 "$ISCSI_IQN" "$(iscsi_root_lun)"
    tgt_set_chap 1 nodeuser s3cr3t-node-pw
    assert_eq "$(iscsi_discovery_status "$ISCSI_PORT")" 0000 "tgtd answers a discovery without CHAP before the discovery account"
    tgt_set_discovery_chap discouser s3cr3t-disco-pw
    tgt_set_discovery_mutual_chap discotgt s3cr3t-disco-tgt-pw
    assert_eq "$(iscsi_discovery_status "$ISCSI_PORT")" 0201 "tgtd refuses a discovery without CHAP"
    vm_boot --initrd mkosi --append "root=iscsi::::1:$ISCSI_IQN metal.iscsi.discovery=10.0.2.2 \
metal.iscsi.discovery.username=discouser metal.iscsi.discovery.password=s3cr3t-disco-pw \
metal.iscsi.discovery.in.username=discotgt metal.iscsi.discovery.in.password=s3cr3t-disco-tgt-pw \
rd.iscsi.username=nodeuser rd.iscsi.password=s3cr3t-node-pw $ISCSI_NET" || true
    assert_report
    assert_report_mount "~^/dev/sd" / ext4
    assert_journal_contains "logged in to $ISCSI_IQN at 10.0.2.2:3260"
    # The unit had no portal: discovery found the target.
    assert_file_contains initrd/systemctl-cat-metalroot.txt "iscsi-login .*--discover 10.0.2.2:3260 --discovery-auth-file /run/metalroot/secrets/iscsi-discovery.auth"
    local w
    for w in s3cr3t-disco-pw s3cr3t-disco-tgt-pw s3cr3t-node-pw; do
        no_secret_anywhere "$w"
    done
}

