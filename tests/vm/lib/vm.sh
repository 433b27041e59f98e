# shellcheck shell=bash
# QEMU launcher and disk helpers for scenarios. Sourced by tests/vm/run.
#
# A scenario runs in its own directory $RUN_DIR (target/vm/<name>/). Per
# scenario the runner calls vm_reset; then the scenario attaches disks and
# boots, as often as it needs:
#
#   img=$(vm_disk data0 400G)            sparse raw file $RUN_DIR/disks/data0.img
#   img=$(vm_copy_image "$ROOT_EXT4" root)  sparse copy of a cached image
#   vm_add_scsi  FILE SERIAL             virtio-scsi disk  (/dev/sdX, TRAN "")
#   vm_add_nvme  FILE SERIAL             NVMe namespace    (/dev/nvmeXn1)
#   vm_add_usb   FILE SERIAL             USB stick on xhci (/dev/sdX, TRAN usb)
#   vm_add_virtio FILE SERIAL            virtio-blk        (/dev/vdX)
#   vm_add_qemu_args ARG...              anything else (e.g. -smbios, -acpitable)
#   VM_NETDEV_EXTRA=",hostname=node1"    more options of the user network
#   VM_NIC_EXTRA=",mac=52:54:00:12:35:11"  more options of its NIC (the
#                                        user network's virtio-net-pci)
#   vm_detach_disks                      start over with no data disks
#   vm_boot [--initrd dracut|mkosi|FILE] [--append "ARGS"] [--timeout SECS]
#           [--mem MiB] [--pxe IPXE_SCRIPT]
#
# vm_boot returns QEMU's status: 0 when the guest powered off, 124 on
# timeout, other values when QEMU failed. Scenarios run with errexit, so a
# boot that did not end by itself ends the scenario as a failure; write
# `vm_boot ... || true` where a hang is the expected outcome. It sets, for
# the assert helpers:
#   RESULTS       the extracted results directory of this boot
#   SERIAL        the serial log of this boot
#   VM_LAST_SECS  how long the QEMU process ran, in seconds
# VM_CONSOLE_INPUT (optional): a file or FIFO fed to the guest's console.
# Boot 1 uses results/ and serial.log; boot N>1 uses results.N/ and
# serial.N.log, so a multi-boot scenario keeps every boot's evidence.
# Disks stay attached across boots of one scenario (vm_reset detaches).

# QEMU's -device/-drive values are comma lists by design:
# shellcheck disable=SC2054

VM_TIMEOUT_DEFAULT="${METALTEST_VM_TIMEOUT:-300}"
VM_MEM_DEFAULT=2048
# vCPUs per guest; tests/vm/run sets it from -j (see its header).
VM_SMP="${METALTEST_SMP:-2}"
# Guests that share the cores with others run up to that many times slower
# (measured: a smoke boot 33 s alone, 68 s beside two others), so every
# boot timeout and host-side wait on a guest is multiplied by this; a
# timeout is there to end a hang, not to time the guest.
VM_TIMEOUT_SCALE="${METALTEST_TIMEOUT_SCALE:-1}"
# A guest kernel lockup in a serial log: the soft-lockup watchdog or an RCU
# stall. Under TCG these come from the emulation, not from metalroot.
VM_LOCKUP_PATTERN='watchdog: BUG: soft lockup|rcu: INFO: rcu_[a-z]+ (self-)?detected stall'
# Seconds a guest gets to finish after its first lockup warning (not scaled:
# the warning itself says the guest is already late).
VM_LOCKUP_GRACE="${METALTEST_LOCKUP_GRACE:-150}"
RESULTS_DISK_SIZE=256M

vm_reset() {
    VM_NETDEV_EXTRA=
    VM_NIC_EXTRA=
    VM_DISK_ARGS=()
    VM_EXTRA_ARGS=()
    VM_HAVE_SCSI=
    VM_HAVE_XHCI=
    VM_HAVE_NVME=
    VM_DRIVE_N=0
    VM_BOOTS=0
    RESULTS=
    SERIAL=
}

# vm_detach_disks: detach every data disk (and extra QEMU arguments) but
# keep the boot counter, so the next vm_boot's evidence goes to results.N/.
vm_detach_disks() {
    VM_DISK_ARGS=()
    VM_EXTRA_ARGS=()
    VM_HAVE_SCSI=
    VM_HAVE_XHCI=
    VM_HAVE_NVME=
}

# vm_disk NAME SIZE: a new sparse raw file; prints its path. Sizes as for
# truncate (400G costs only what the guest writes).
vm_disk() {
    local f="$RUN_DIR/disks/$1.img"
    mkdir -p "$RUN_DIR/disks"
    rm -f "$f"
    truncate -s "$2" "$f"
    echo "$f"
}

# vm_copy_image SRC NAME: a private, sparse copy of a cached image (so the
# guest can write to it); prints its path.
vm_copy_image() {
    local f="$RUN_DIR/disks/$2.img"
    mkdir -p "$RUN_DIR/disks"
    cp --sparse=always "$1" "$f"
    echo "$f"
}

_vm_drive() {
    # cache=unsafe: ignore the guest's flushes (QEMU still writes every
    # block to the file, so a later boot sees it). detect-zeroes/discard:
    # wiping and zeroing keep the sparse files sparse.
    # Sets VM_DRIVE_ID (not printed: $(...) would run it in a subshell and
    # lose the appended arguments).
    VM_DRIVE_ID="d$VM_DRIVE_N"
    VM_DRIVE_N=$((VM_DRIVE_N + 1))
    VM_DISK_ARGS+=(-drive "if=none,id=$VM_DRIVE_ID,file=$1,format=raw,cache=unsafe,discard=unmap,detect-zeroes=unmap${2:+,$2}")
}

_vm_scsi_controller() {
    if [[ -z "$VM_HAVE_SCSI" ]]; then
        VM_DISK_ARGS+=(-device virtio-scsi-pci,id=scsi0)
        VM_HAVE_SCSI=1
    fi
}

vm_add_scsi() {
    _vm_scsi_controller
    _vm_drive "$1"
    VM_DISK_ARGS+=(-device "scsi-hd,bus=scsi0.0,drive=$VM_DRIVE_ID,serial=$2")
}

# vm_add_scsi_twice FILE SERIAL: FILE as two SCSI disks (serials SERIAL-1
# and SERIAL-2; file locking off, shared writes allowed), for a scenario
# that must name a disk /dev/sdX although the guest's asynchronous probe
# names its SCSI disks in either order. Only one of the two may be mounted
# in a boot.
vm_add_scsi_twice() {
    local i
    _vm_scsi_controller
    for i in 1 2; do
        _vm_drive "$1" file.locking=off
        VM_DISK_ARGS+=(-device "scsi-hd,bus=scsi0.0,drive=$VM_DRIVE_ID,serial=$2-$i,share-rw=on")
    done
}

vm_add_nvme() {
    VM_HAVE_NVME=1
    _vm_drive "$1"
    VM_DISK_ARGS+=(-device "nvme,serial=$2,drive=$VM_DRIVE_ID")
}

vm_add_usb() {
    if [[ -z "$VM_HAVE_XHCI" ]]; then
        VM_DISK_ARGS+=(-device qemu-xhci,id=xhci)
        VM_HAVE_XHCI=1
    fi
    _vm_drive "$1"
    VM_DISK_ARGS+=(-device "usb-storage,bus=xhci.0,drive=$VM_DRIVE_ID,removable=on,serial=$2")
}

vm_add_virtio() {
    _vm_drive "$1"
    VM_DISK_ARGS+=(-device "virtio-blk-pci,drive=$VM_DRIVE_ID,serial=$2")
}

vm_add_qemu_args() {
    VM_EXTRA_ARGS+=("$@")
}

# initrd_path dracut|mkosi|FILE
initrd_path() {
    case "$1" in
        dracut) echo "$INITRD_DRACUT" ;;
        mkosi) echo "$INITRD_MKOSI" ;;
        *) echo "$1" ;;
    esac
}

vm_boot() {
    local initrd=dracut append="" timeout="$VM_TIMEOUT_DEFAULT" mem="$VM_MEM_DEFAULT" pxe=""
    while (($#)); do
        case "$1" in
            --initrd) initrd=$2; shift 2 ;;
            --pxe) pxe=$2; shift 2 ;;
            --append) append=$2; shift 2 ;;
            --timeout) timeout=$2; shift 2 ;;
            --mem) mem=$2; shift 2 ;;
            *) die "vm_boot: unknown option $1" ;;
        esac
    done
    timeout=$((timeout * VM_TIMEOUT_SCALE))
    # QEMU 7.2's NVMe controller under TCG, with the one I/O queue a 1-vCPU
    # guest gets, once stopped completing I/O (demo-dracut, 2026-12-02:
    # "nvme0: I/O 29 QID 1 timeout, aborting", then reset and disable, the
    # arrays degraded); with 2 vCPUs it never did in any earlier run.
    local smp=$VM_SMP
    [[ -n "$VM_HAVE_NVME" ]] && ((smp < 2)) && smp=2
    VM_BOOTS=$((VM_BOOTS + 1))
    local sfx=""
    ((VM_BOOTS > 1)) && sfx=".$VM_BOOTS"
    RESULTS="$RUN_DIR/results$sfx"
    SERIAL="$RUN_DIR/serial$sfx.log"
    local rimg="$RUN_DIR/results$sfx.img"
    rm -rf "$RESULTS" "$rimg"
    mkdir -p "$RESULTS"
    truncate -s "$RESULTS_DISK_SIZE" "$rimg"

    local initrd_file
    initrd_file="$(initrd_path "$initrd")"
    [[ -f "$initrd_file" ]] || die "no initrd $initrd_file"
    # audit=0: under TCG, the booted root's systemd once spun for minutes in
    # the kernel's audit netlink path (soft lockup in audit_receive, root-snap
    # on 2026-11-25); nothing here tests audit.
    # norandmaps: TCG translates code per virtual address, so with ASLR each
    # process translates the same libraries again; a reused page with
    # thousands of stale translations then costs QEMU a check per guest
    # store (metal.ram boots: 30-40 s after switch-root; tests/vm/README.md).
    local cmdline="console=ttyS0 panic=-1 audit=0 norandmaps $append"
    # --pxe FILE: no -kernel; the firmware's iPXE boots from the network
    # (QEMU's user-net DHCP names FILE, served by its TFTP from FILE's
    # directory), and FILE (an iPXE script) fetches kernel and initrd itself.
    local boot=(-kernel "${GUEST_BOOT_KERNEL:-$GUEST_VMLINUZ}" -initrd "$initrd_file" -append "$cmdline")
    local netdev=user,id=n0
    if [[ -n "$pxe" ]]; then
        boot=(-boot n)
        netdev="user,id=n0,tftp=$(dirname "$pxe"),bootfile=$(basename "$pxe")"
    fi
    netdev+="${VM_NETDEV_EXTRA:-}"
    local qemu=(
        qemu-system-x86_64 -accel tcg -cpu max -m "$mem" -smp "$smp"
        -nographic -no-reboot -nodefaults -serial stdio -monitor none
        "${boot[@]}"
        -drive "if=none,id=results,file=$rimg,format=raw,cache=unsafe"
        -device virtio-blk-pci,drive=results,serial=results
        -netdev "$netdev" -device "virtio-net-pci,netdev=n0${VM_NIC_EXTRA:-}"
        -device virtio-rng-pci
        "${VM_DISK_ARGS[@]}" "${VM_EXTRA_ARGS[@]}"
    )
    printf '%q ' "${qemu[@]}" >"$RUN_DIR/qemu$sfx.cmd"
    echo >>"$RUN_DIR/qemu$sfx.cmd"

    log "boot $VM_BOOTS: $(basename "$initrd_file"), append: $append"
    local t0=$EPOCHREALTIME rc=0
    # -k: QEMU exits on TERM, but make sure. stdin </dev/null: the guest's
    # console gets no input (no one can log in; shells wait), unless the
    # scenario set VM_CONSOLE_INPUT (a FIFO it types into, see 70-ops.sh).
    timeout -k 10 "$timeout" "${qemu[@]}" <"${VM_CONSOLE_INPUT:-/dev/null}" >"$SERIAL" 2>&1 &
    local qpid=$! wpid
    rm -f "$RUN_DIR/.lockup-killed"
    _vm_lockup_watch "$qpid" "$SERIAL" "$RUN_DIR/.lockup-killed" &
    wpid=$!
    wait "$qpid" || rc=$?
    kill "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
    local secs
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    # shellcheck disable=SC2034  # for scenarios
    VM_LAST_SECS=$secs

    _vm_extract_results "$rimg" "$RESULTS"
    local kind=none
    [[ -f "$RESULTS/REPORT" ]] && kind=report
    [[ -f "$RESULTS/EMERGENCY" ]] && kind=emergency
    local how="powered off"
    ((rc == 124)) && how="TIMED OUT after ${timeout}s"
    ((rc != 0 && rc != 124)) && how="qemu exit $rc"
    if [[ -f "$RUN_DIR/.lockup-killed" ]]; then
        how="KILLED ${VM_LOCKUP_GRACE}s after a guest kernel lockup"
        rc=124
        rm -f "$RUN_DIR/.lockup-killed"
    fi
    printf 'boot %d: %s in %ss, results: %s, initrd: %s, append: %s\n' \
        "$VM_BOOTS" "$how" "$secs" "$kind" "$(basename "$initrd_file")" "$append" >>"$RUN_DIR/summary.txt"
    log "boot $VM_BOOTS: $how in ${secs}s, results: $kind"
    rm -f "$rimg"
    return "$rc"
}

# _vm_lockup_watch PID SERIAL MARKER: once SERIAL shows a guest kernel
# lockup, give the guest VM_LOCKUP_GRACE more seconds, then stop QEMU (PID,
# its `timeout`) and leave MARKER. A guest that recovers from a TCG stall
# finishes within ~30 s of the first warning (2026-12-03: three such boots
# passed 18-28 s after it); one that does not would otherwise hold a worker
# until the boot timeout (600-900 s at -j2), and the runner retries it anyway.
_vm_lockup_watch() {
    local pid=$1 log=$2 marker=$3 since=""
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        if [[ -z "$since" ]]; then
            grep -qsE "$VM_LOCKUP_PATTERN" "$log" && since=$SECONDS
        elif ((SECONDS - since >= VM_LOCKUP_GRACE)); then
            : >"$marker"
            kill -TERM "$pid" 2>/dev/null || true
            return 0
        fi
    done
}

# The guest wrote a tar stream at offset 0 of the results disk, or nothing
# (all zeros).
_vm_extract_results() {
    local img=$1 dir=$2
    if [[ -z "$(head -c 512 "$img" | tr -d '\0')" ]]; then
        echo "results disk is empty: the guest wrote no report" >"$dir/.no-results"
        return 0
    fi
    tar -xf "$img" -C "$dir" 2>"$dir/.tar-errors" || true
    [[ -s "$dir/.tar-errors" ]] || rm -f "$dir/.tar-errors"
}

# serial_log_wait FILE TEXT: wait until FILE (a boot's serial log, maybe not
# yet created) holds TEXT; 1 after 300 s x VM_TIMEOUT_SCALE.
serial_log_wait() {
    local i
    for ((i = 0; i < 1200 * VM_TIMEOUT_SCALE; i++)); do
        grep -qs -- "$2" "$1" && return 0
        sleep 0.25
    done
    return 1
}
