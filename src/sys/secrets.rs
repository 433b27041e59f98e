//! The life cycle of a secret file under /run/metalroot/secrets: the
//! generator writes it (0600, through `private`) unless a step has already
//! used it; the step reads it and, once done, removes it and leaves
//! `<file>.consumed` so that a daemon-reload (which re-runs generators) does
//! not write it back.

use crate::sys::private;
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The marker a step leaves for a secret it has used.
fn consumed_marker(secret: &Path) -> PathBuf {
    let mut s = secret.as_os_str().to_owned();
    s.push(".consumed");
    PathBuf::from(s)
}

/// Writes a secret for a step, unless a step has used it already.
pub fn provide(path: &Path, contents: &[u8]) -> Result<()> {
    if consumed_marker(path).exists() {
        return Ok(());
    }
    private::write(path, contents)
}

/// The secret's text, without the trailing newline.
pub fn read(path: &Path) -> Result<String> {
    let s = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(s.trim().to_string())
}

/// Removes a used secret and marks it used. Best effort: a secret that
/// cannot be removed is in RAM and 0600 anyway.
pub fn consume(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::write(consumed_marker(path), "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumed_secret_is_not_written_again() {
        let (_d, p) = crate::testing::temp_path("secrets/s.auth");
        provide(&p, b"password=x\n").unwrap();
        assert_eq!(read(&p).unwrap(), "password=x");
        consume(&p);
        assert!(!p.exists());
        provide(&p, b"password=x\n").unwrap();
        assert!(!p.exists());
    }
}
