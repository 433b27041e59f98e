# shellcheck shell=bash
# Signed images and a software TPM, for the trust scenarios (issue 17).
# Sourced by tests/vm/run; every function runs inside a scenario ($RUN_DIR).
#
#   trust_keygen                 a new minisign key pair in $RUN_DIR/trust/
#                                (one per scenario, unencrypted); sets
#                                TRUST_PUB, TRUST_SEC, TRUST_KEYID
#   trust_sign FILE COMMENT      FILE.minisig (prehashed, trusted comment
#                                COMMENT), checked with minisign -V -H
#   trust_initrd [dracut|mkosi]  that initrd with TRUST_PUB appended as
#                                /etc/metalroot/keys/metaltest.pub (an extra
#                                newc archive); prints its path
#   trust_add_key_credential NAME  pass TRUST_PUB (the whole .pub file) to
#                                the guest as the systemd credential NAME
#                                (SMBIOS type 11, for metal.verify-key=NAME)
#   tpm_boot VM_BOOT_ARGS...     vm_boot with a fresh swtpm TPM 2.0 attached,
#                                stopped after the boot whatever its outcome
#   tpm_expected_pcr SHA256      PCR value after one extend of a zero PCR
#                                with that digest (sha256 bank)

TRUST_PUB=
TRUST_SEC=
TRUST_KEYID=
_TPM_PID=

trust_keygen() {
    local dir="$RUN_DIR/trust"
    mkdir -p "$dir"
    TRUST_PUB="$dir/metaltest.pub"
    TRUST_SEC="$dir/metaltest.key"
    rm -f "$TRUST_PUB" "$TRUST_SEC"
    # -W: no password, so signing needs no terminal.
    minisign -G -W -p "$TRUST_PUB" -s "$TRUST_SEC" >"$dir/keygen.log" 2>&1 ||
        { cat "$dir/keygen.log" >&2; die "minisign -G failed"; }
    # The key id as minisign prints it (uppercase hex, no leading zeros:
    # 1 key in 16 has 15 digits), which is also how metalroot names the key
    # in its journal lines.
    TRUST_KEYID=$(sed -n 's/^untrusted comment: minisign public key \([0-9A-F]\{1,16\}\)$/\1/p' "$TRUST_PUB")
    [[ -n "$TRUST_KEYID" ]] || die "no key id in $TRUST_PUB"
    log "minisign key $TRUST_KEYID"
}

trust_sign() {
    local file=$1 comment=$2
    # -H: prehashed (ED), the only form metalroot accepts; minisign 0.11
    # makes it by default, said here so an older minisign cannot differ.
    minisign -S -H -s "$TRUST_SEC" -m "$file" -t "$comment" >/dev/null ||
        die "minisign -S failed for $file"
    # The bench's own check: a bad signature here would make a scenario
    # test the bench instead of metalroot.
    minisign -V -H -q -p "$TRUST_PUB" -m "$file" || die "minisign -V refused $file.minisig"
}

trust_initrd() {
    local base dir="$RUN_DIR/trust/keys-cpio" out="$RUN_DIR/disks/initrd-trust-${1:-dracut}.img"
    base="$(initrd_path "${1:-dracut}")"
    rm -rf "$dir"
    mkdir -p "$dir/etc/metalroot/keys" "$RUN_DIR/disks"
    cp "$TRUST_PUB" "$dir/etc/metalroot/keys/metaltest.pub"
    # The kernel unpacks every archive of a concatenation into the same
    # rootfs; the directories are listed first because it creates no parent
    # directory itself. Under disks/, which a passing scenario drops.
    cp "$base" "$out"
    (cd "$dir" && printf '%s\n' etc etc/metalroot etc/metalroot/keys etc/metalroot/keys/metaltest.pub |
        cpio -o -H newc --owner=0:0 --quiet) >>"$out"
    echo "$out"
}

# Binary credential: the .pub file is two lines, and base64 carries them
# through QEMU's option parser (no commas in base64).
trust_add_key_credential() {
    vm_add_qemu_args -smbios "type=11,value=io.systemd.credential.binary:$1=$(base64 -w0 "$TRUST_PUB")"
}

_tpm_start() {
    local dir="$RUN_DIR/tpm" limit=$1 i
    rm -rf "$dir"
    mkdir -p "$dir/state"
    TPM_SOCK="$dir/swtpm.sock"
    # sun_path holds 108 bytes; a deep checkout would fail in QEMU with a
    # less obvious message.
    ((${#TPM_SOCK} < 100)) || die "swtpm socket path too long: $TPM_SOCK"
    # --terminate: swtpm ends when QEMU closes the connection, even when
    # QEMU was killed; timeout bounds it if QEMU never connects. A fresh
    # state directory per boot: PCRs start at zero and nothing is carried
    # over from another scenario.
    timeout -k 5 "$limit" swtpm socket --tpm2 --terminate \
        --tpmstate "dir=$dir/state" --ctrl "type=unixio,path=$TPM_SOCK" \
        --log "file=$dir/swtpm.log,level=2" </dev/null >>"$dir/swtpm.out" 2>&1 9>&- &
    _TPM_PID=$!
    # The scenario's subshell owns swtpm: stop it if the scenario ends early.
    trap _tpm_stop EXIT
    for ((i = 0; i < 100; i++)); do
        [[ -S "$TPM_SOCK" ]] && return 0
        kill -0 "$_TPM_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/swtpm.out" "$dir/swtpm.log" >&2 2>/dev/null
    die "swtpm did not start"
}

_tpm_stop() {
    [[ -n "$_TPM_PID" ]] || return 0
    kill -TERM "$_TPM_PID" 2>/dev/null || true
    wait "$_TPM_PID" 2>/dev/null || true
    _TPM_PID=
}

tpm_boot() {
    local a timeout=$VM_TIMEOUT_DEFAULT rc=0
    local saved=("${VM_EXTRA_ARGS[@]}") args=("$@")
    for ((a = 0; a < ${#args[@]}; a++)); do
        [[ "${args[a]}" == --timeout ]] && timeout=${args[a + 1]}
    done
    # vm_boot's own limit (scaled) plus its kill grace and a margin.
    _tpm_start $((timeout * VM_TIMEOUT_SCALE + 30))
    vm_add_qemu_args -chardev "socket,id=chrtpm,path=$TPM_SOCK" \
        -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0
    # The vmlinuz, not the PVH ELF: QEMU 7.2 places a PVH boot's initrd
    # right below RAM - 160 KiB, where SeaBIOS's ACPI tables end up once the
    # TPM's 64 KiB event log is among them; the initrd's tail overwrote the
    # RSDT (no ACPI: no TPM found, no power-off). The bzImage's loader ROM
    # puts the initrd below the firmware's e820 reservations instead
    # (measured: initrd end 0x7ffd7fff over tables at 0x7ffcd000+ with PVH,
    # 0x7ffbffff with the vmlinuz; 2-3 s more kernel decompression).
    GUEST_BOOT_KERNEL=$GUEST_VMLINUZ vm_boot "$@" || rc=$?
    _tpm_stop
    # The TPM belongs to this boot only.
    VM_EXTRA_ARGS=("${saved[@]}")
    return "$rc"
}

tpm_expected_pcr() {
    python3 -c 'import hashlib, sys; print(hashlib.sha256(bytes(32) + bytes.fromhex(sys.argv[1])).hexdigest())' "$1"
}
