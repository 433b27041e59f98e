# shellcheck shell=bash
# Trusted images (issue 17): the image is signed with minisign (prehashed)
# and the node checks the signature against the keys it trusts while the
# image streams; an image that fails is discarded and the next server tried;
# with a TPM the image's sha256 is extended into PCR 15. Boots to RAM
# (metal.ram=overlay), so there is no disk layout and the boots are short.
# Helpers: lib/trust.sh (keys, signing, the key in the initrd, swtpm).
#
#   trust-signed             key in the initrd (a file), signed image: boots
#   trust-tampered           mirror 1 serves a modified image (its .sha256
#                            made to match) with the good signature: refused,
#                            mirror 2's good image boots
#   trust-unsigned-with-key  key as a systemd credential, no .minisig: the
#                            boot is refused; with metal.verify=sha256 it
#                            boots, with the generator's warning
#   trust-tpm                signed image, swtpm: PCR 15 and the TPM event
#                            log hold the image's sha256

TRUST_NET="ip=dhcp rd.neednet=1"
TRUST_GOOD_URL=http://10.0.2.2:8080/squashfs.img

# trust_publish_signed COMMENT: the test root as the served image with its
# .sha256 sidecar and its signature; a new key pair first.
trust_publish_signed() {
    trust_keygen
    publish_image
    trust_sign "$WWW/squashfs.img" "$1"
}

# trust_comment: a trusted comment no earlier run can have left anywhere.
trust_comment() {
    echo "metaltest $1 $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

# assert_image_json JQ_FILTER WHAT: the report's image.json (the fetch
# step's record, copied from /run/metalroot) satisfies the filter.
assert_image_json() {
    if [[ ! -f "$RESULTS/image.json" ]]; then
        fail "$2: no image.json in $RESULTS (/run/metalroot/image.json in the root)"
    elif jq -e "$1" "$RESULTS/image.json" >/dev/null 2>&1; then
        pass "$2 (image.json: $1)"
    else
        fail "$2: image.json does not satisfy $1: $(tr -d '\n' <"$RESULTS/image.json" | cut -c1-300)"
    fi
}

# The key the scenario appended to the initrd really was in it (the
# initrd's snapshot copies /etc/metalroot/keys), so a failure below is
# metalroot's and not the bench's.
assert_key_in_initrd() {
    check "the initrd held the key as /etc/metalroot/keys/metaltest.pub" \
        cmp "$RESULTS/initrd/metalroot-keys/metaltest.pub" "$TRUST_PUB"
}

scenario_trust_signed() {
    local comment sum
    comment=$(trust_comment trust-signed)
    trust_publish_signed "$comment"
    sum=$(cut -d' ' -f1 "$WWW/squashfs.img.sha256")
    vm_boot --initrd "$(trust_initrd dracut)" \
        --append "metal.server=http://10.0.2.2:8080/ metal.ram=overlay $TRUST_NET" || true
    assert_report
    assert_key_in_initrd
    assert_journal_contains "verify: signature \(trusted keys: $TRUST_KEYID\)"
    assert_journal_contains "signature verified: key $TRUST_KEYID, trusted comment: $comment\$"
    assert_journal_contains "fetched $TRUST_GOOD_URL"
    assert_report_mount LiveOS_rootfs / overlay
    assert_image_json ".url == \"$TRUST_GOOD_URL\" and .sha256 == \"$sum\"" "the booted image"
    assert_image_json ".verify == \"signature\" and .signature.key_id == \"$TRUST_KEYID\" and .signature.trusted_comment == \"$comment\"" \
        "image.json names the key and the trusted comment"
}

# Two mirrors with different contents: the fault server (8081) serves
# tampered/ of the same directory nginx (8080) serves. Mirror 1's image has
# 16 bytes changed in the middle (same size) and a .sha256 made for the
# changed bytes, so only the signature can tell; its .minisig is the good
# image's.
scenario_trust_tampered() {
    local comment good bad bad_url=http://10.0.2.2:8081/tampered/squashfs.img
    comment=$(trust_comment trust-tampered)
    trust_publish_signed "$comment"
    good=$(cut -d' ' -f1 "$WWW/squashfs.img.sha256")
    mkdir -p "$WWW/tampered"
    cp --sparse=always "$WWW/squashfs.img" "$WWW/tampered/squashfs.img"
    printf 'TAMPERED-BY-TEST' | dd of="$WWW/tampered/squashfs.img" bs=1 \
        seek=$(($(stat -c %s "$WWW/squashfs.img") / 2)) conv=notrunc status=none
    (cd "$WWW/tampered" && sha256sum squashfs.img >squashfs.img.sha256)
    cp "$WWW/squashfs.img.minisig" "$WWW/tampered/"
    bad=$(cut -d' ' -f1 "$WWW/tampered/squashfs.img.sha256")
    check "the tampered copy differs ($bad)" test "$bad" != "$good"
    # The bench's own check: minisign itself refuses the tampered copy.
    check "minisign refuses the tampered copy" \
        bash -c "! minisign -V -H -q -p '$TRUST_PUB' -m '$WWW/tampered/squashfs.img'"

    # nginx's access log is the worker's, kept across scenarios: only the
    # lines of this boot count.
    local access="$SERVERS_DIR/nginx/access.log" seen
    seen=$(wc -l <"$access")
    vm_boot --initrd "$(trust_initrd dracut)" \
        --append "metal.server=http://10.0.2.2:8081/tampered/ metal.server=http://10.0.2.2:8080/ metal.ram=overlay $TRUST_NET" || true
    assert_report
    assert_key_in_initrd
    assert_journal_contains "signature check failed for $bad_url: .*the image was discarded"
    assert_journal_contains "failing over to the next server"
    assert_journal_contains "signature verified: key $TRUST_KEYID, trusted comment: $comment\$"
    # Refused by the signature, not by a hash: mirror 1's sidecar matched
    # its bytes, and mirror 2's image must not be held to mirror 1's sidecar.
    assert_journal_not_contains "sha256 mismatch"
    # Mirror 1 was really tried: the fault server sent the tampered image.
    local sent
    sent=$(fault_stats | jq -r '.paths["/tampered/squashfs.img"].body_bytes // 0')
    check "mirror 1 sent its image ($sent bytes)" test "$sent" -gt 0
    local gets
    gets=$(tail -n +$((seen + 1)) "$access" |
        grep -Ec '"GET /squashfs\.img HTTP/[0-9.]+" 20[06] body_bytes_sent=[1-9]' || true)
    check "mirror 2 sent its image ($gets GETs in nginx's access log)" test "$gets" -gt 0
    # What booted is mirror 2's image, not the discarded part file.
    assert_image_json ".url == \"$TRUST_GOOD_URL\" and .sha256 == \"$good\"" "the booted image is mirror 2's"
    assert_image_json ".signature.key_id == \"$TRUST_KEYID\" and .signature.trusted_comment == \"$comment\"" \
        "image.json names the key and the trusted comment"
    assert_report_mount LiveOS_rootfs / overlay
}

# The key reaches the node as the systemd credential metaltestKey (SMBIOS
# type 11, the .pub file whole) named by metal.verify-key=; the plain dracut
# initrd holds no key file. The server has the image and its .sha256 but no
# .minisig.
scenario_trust_unsigned_with_key() {
    trust_keygen
    publish_image
    trust_add_key_credential metaltestKey
    local args="metal.verify-key=metaltestKey metal.server=http://10.0.2.2:8080/ metal.ram=overlay metal.fetch-timeout=30 $TRUST_NET"
    vm_boot --timeout 300 --append "$args" || true
    assert_emergency
    assert_journal_contains "verify: signature \(trusted keys: $TRUST_KEYID\)"
    assert_journal_contains "no signature at $TRUST_GOOD_URL.minisig: refused \(metal.verify=signature\)"
    assert_journal_not_contains "Finished metalroot-sysroot.service"
    assert_journal_not_contains "mounting .* at /sysroot"

    # The operator's way out: hash checking only, said out loud.
    boot_reaches_root --append "$args metal.verify=sha256"
    assert_journal_contains "warning: metal\.verify=sha256: the image's signature is not checked"
    assert_journal_contains "sha256 verified"
    assert_journal_not_contains "signature verified"
    assert_image_json '.verify == "sha256"' "image.json says the image was checked by sha256 only"
    assert_report_mount LiveOS_rootfs / overlay
}

scenario_trust_tpm() {
    local comment sum pcr
    comment=$(trust_comment trust-tpm)
    trust_publish_signed "$comment"
    sum=$(cut -d' ' -f1 "$WWW/squashfs.img.sha256")
    pcr=$(tpm_expected_pcr "$sum")
    tpm_boot --initrd "$(trust_initrd dracut)" \
        --append "metal.server=http://10.0.2.2:8080/ metal.ram=overlay $TRUST_NET" || true
    assert_report
    assert_key_in_initrd
    assert_journal_contains "signature verified: key $TRUST_KEYID"
    assert_journal_contains "measured the image \(sha256 $sum\) into PCR 15"
    # sysfs prints the PCR in upper case.
    assert_eq "$(tr 'A-F' 'a-f' <"$RESULTS/pcr15" 2>/dev/null)" "$pcr" \
        "PCR 15 = sha256(32 zero bytes || image sha256)"
    # The TPM event log (JSON-SEQ: RS, object, LF) records that extension.
    # shellcheck disable=SC2016  # $d is jq's
    check "tpm2-measure.log has PCR 15 extended with sha256 $sum" \
        jq -e --seq -s --arg d "$sum" \
        'any(.[]; .pcr == 15 and any(.digests[]; .hashAlg == "sha256" and .digest == $d))' \
        "$RESULTS/tpm2-measure.log"
    assert_image_json ".measured.pcr == 15 and .measured.bank == \"sha256\" and .sha256 == \"$sum\"" "image.json records the measurement"
}
