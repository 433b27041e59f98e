//! Trusted images: the minisign public keys a node trusts, and the detached
//! signature (`<image>.minisig`, prehashed: `minisign -S -H`) checked while
//! the image streams. The keys come from the initrd (`/etc/metalroot/keys`)
//! or from a systemd credential, never from the image's server.

use anyhow::{bail, Context, Result};
use base64::Engine;
use minisign_verify::{PublicKey, Signature, StreamVerifier};
use std::fmt;
use std::path::{Path, PathBuf};

/// minisign's key id as `minisign` prints it: the 8 bytes after the
/// algorithm, read as a little-endian number, in upper-case hex without
/// leading zeros (its `%PRIX64`), so that the journal's id is the one in the
/// `.pub` file's comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", u64::from_le_bytes(self.0))
    }
}

/// The key id inside a key's or a signature's base64 line (2 bytes of
/// algorithm, then the id).
fn key_id_of(b64: &str) -> Option<KeyId> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let id: [u8; 8] = bin.get(2..10)?.try_into().ok()?;
    Some(KeyId(id))
}

/// A trusted public key and where it came from (for messages).
pub struct TrustedKey {
    pub id: KeyId,
    pub key: PublicKey,
    pub from: String,
}

/// Parses a key: a minisign `.pub` file, or only its base64 line.
pub fn parse_key(text: &str, from: &str) -> Result<TrustedKey> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .with_context(|| format!("{from}: no key in it"))?;
    let key = PublicKey::from_base64(line)
        .map_err(|e| anyhow::anyhow!("{from}: not a minisign public key: {e}"))?;
    let id = key_id_of(line).with_context(|| format!("{from}: no key id"))?;
    Ok(TrustedKey {
        id,
        key,
        from: from.to_string(),
    })
}

/// The trusted keys: every `*.pub` in `dir` (absent: none), then the
/// credential `credential` (which must be there when named). A key that
/// does not parse is an error, not skipped: a site that installed a key
/// means it.
pub fn load_keys(dir: &Path, credential: Option<&str>) -> Result<Vec<TrustedKey>> {
    let mut keys = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.sort();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        keys.push(parse_key(&text, &f.display().to_string())?);
    }
    if let Some(name) = credential {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").with_context(|| {
            format!(
                "metal.verify-key={name}: no $CREDENTIALS_DIRECTORY (the unit got no credential)"
            )
        })?;
        let path = Path::new(&dir).join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("metal.verify-key={name}: reading {}", path.display()))?;
        keys.push(parse_key(&text, &format!("credential {name}"))?);
    }
    Ok(keys)
}

pub fn ids(keys: &[TrustedKey]) -> String {
    keys.iter()
        .map(|k| k.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A signature, matched to the trusted key that made it.
pub struct Signed<'k> {
    pub sig: Signature,
    pub key: &'k TrustedKey,
}

/// Who signed an image, as kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub key_id: String,
    pub trusted_comment: String,
}

/// As the journal names a signer: `key <id>, trusted comment: <comment>`.
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {}, trusted comment: {}",
            self.key_id, self.trusted_comment
        )
    }
}

impl<'k> Signed<'k> {
    /// Parses `<image>.minisig` text and finds its key among `keys`. Refuses
    /// a legacy (not prehashed) signature: it cannot be checked while the
    /// image streams.
    pub fn parse(text: &str, keys: &'k [TrustedKey]) -> Result<Signed<'k>> {
        let sig = Signature::decode(text)
            .map_err(|e| anyhow::anyhow!("not a minisign signature: {e}"))?;
        let id = text
            .lines()
            .nth(1)
            .and_then(key_id_of)
            .context("not a minisign signature: no key id")?;
        let Some(key) = keys.iter().find(|k| k.id == id) else {
            bail!(
                "signed by key {id}, which is not trusted (trusted: {})",
                ids(keys)
            );
        };
        // A check now, so that a legacy signature is refused before any byte
        // of the image is downloaded.
        key.key.verify_stream(&sig).map_err(|e| match e {
            minisign_verify::Error::UnsupportedLegacyMode => anyhow::anyhow!(
                "key {id}: a legacy signature; sign with `minisign -S -H` (prehashed)"
            ),
            e => anyhow::anyhow!("key {id}: {e}"),
        })?;
        Ok(Signed { sig, key })
    }

    /// The state fed with every byte of the image.
    pub fn verifier(&self) -> Result<StreamVerifier<'_>> {
        self.key
            .key
            .verify_stream(&self.sig)
            .map_err(|e| anyhow::anyhow!("key {}: {e}", self.key.id))
    }

    /// Checks the finished stream: the signature over the image's BLAKE2b
    /// and the trusted comment.
    pub fn check(&self, mut v: StreamVerifier<'_>) -> Result<Verdict> {
        v.finalize().map_err(|e| {
            anyhow::anyhow!(
                "key {}: {}",
                self.key.id,
                match e {
                    minisign_verify::Error::InvalidSignature =>
                        "the signature does not match the image".to_string(),
                    e => e.to_string(),
                }
            )
        })?;
        Ok(self.verdict())
    }

    pub fn verdict(&self) -> Verdict {
        Verdict {
            key_id: self.key.id.to_string(),
            trusted_comment: self.sig.trusted_comment().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `minisign -G -W` and `minisign -S -H -t 'metaltest image 1'`
    // over the bytes b"metalroot test image\n" (tests only; no secret key is
    // kept anywhere).
    pub const PUB: &str = include_str!("../../tests/trust/test.pub");
    pub const SIG: &str = include_str!("../../tests/trust/image.bin.minisig");
    pub const IMAGE: &[u8] = include_bytes!("../../tests/trust/image.bin");
    pub const LEGACY_SIG: &str = include_str!("../../tests/trust/image.bin.legacy.minisig");
    pub const OTHER_PUB: &str = include_str!("../../tests/trust/other.pub");

    fn key_id_in_pub(text: &str) -> String {
        text.lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn key_id_is_minisigns() {
        let k = parse_key(PUB, "test.pub").unwrap();
        assert_eq!(k.id.to_string(), key_id_in_pub(PUB));
        // The bare base64 line (a credential) is the same key.
        let line = PUB.lines().nth(1).unwrap();
        assert_eq!(parse_key(line, "cred").unwrap().id, k.id);
    }

    /// 1 key in 16 has a leading zero, which minisign does not print
    /// (seen in the clean-clone run: "minisign public key F6CA40EE5D3FFA0").
    #[test]
    fn key_ids_have_no_leading_zeros_as_minisign_prints_them() {
        let id = KeyId(0x0F6C_A40E_E5D3_FFA0u64.to_le_bytes());
        assert_eq!(id.to_string(), "F6CA40EE5D3FFA0");
    }

    #[test]
    fn a_streamed_image_verifies_in_pieces() {
        let keys = vec![parse_key(PUB, "test.pub").unwrap()];
        let s = Signed::parse(SIG, &keys).unwrap();
        let mut v = s.verifier().unwrap();
        for piece in IMAGE.chunks(5) {
            v.update(piece);
        }
        let verdict = s.check(v).unwrap();
        assert_eq!(verdict.key_id, key_id_in_pub(PUB));
        assert!(verdict.trusted_comment.contains("metaltest image 1"));
    }

    #[test]
    fn a_changed_image_is_refused_naming_the_key() {
        let keys = vec![parse_key(PUB, "test.pub").unwrap()];
        let s = Signed::parse(SIG, &keys).unwrap();
        let mut v = s.verifier().unwrap();
        v.update(IMAGE);
        v.update(b"x");
        let e = s.check(v).unwrap_err().to_string();
        assert!(e.contains(&key_id_in_pub(PUB)), "{e}");
        assert!(e.contains("does not match the image"), "{e}");
    }

    #[test]
    fn an_untrusted_key_and_a_legacy_signature_are_refused() {
        let other = vec![parse_key(OTHER_PUB, "other.pub").unwrap()];
        let e = Signed::parse(SIG, &other).err().unwrap().to_string();
        assert!(e.contains("not trusted"), "{e}");
        let keys = vec![parse_key(PUB, "test.pub").unwrap()];
        let e = Signed::parse(LEGACY_SIG, &keys).err().unwrap().to_string();
        assert!(e.contains("minisign -S -H"), "{e}");
        assert!(Signed::parse("garbage", &keys).is_err());
    }

    #[test]
    fn keys_from_a_directory_and_a_bad_key_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(load_keys(&d.path().join("absent"), None)
            .unwrap()
            .is_empty());
        std::fs::write(d.path().join("site.pub"), PUB).unwrap();
        std::fs::write(d.path().join("README"), "not a key").unwrap();
        let keys = load_keys(d.path(), None).unwrap();
        assert_eq!(keys.len(), 1);
        std::fs::write(
            d.path().join("bad.pub"),
            "untrusted comment: x\nnot base64\n",
        )
        .unwrap();
        assert!(load_keys(d.path(), None).is_err());
    }
}
