//! An exclusive flock(2) on a file, made (with its folder) if missing.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::path::Path;

/// Opens `path` for appending (created, with its folder, if missing) and
/// holds an exclusive lock on it until the returned guard is dropped.
pub fn exclusive(path: &Path) -> Result<nix::fcntl::Flock<File>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", path.display()))
}
