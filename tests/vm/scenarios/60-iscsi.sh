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
# of the whole command line by the kernel and by dracut-cmdline, which
# metalroot cannot hide (a secret on the command line is in /proc/cmdline).
no_secret_but_cmdline() {
    check "secret $1 only in the kernel's command line lines" \
        bash -c "! grep -F '$1' '$RESULTS/journal.txt' | grep -vE 'Kernel command line|Command line:|Using kernel command line parameters'"
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
