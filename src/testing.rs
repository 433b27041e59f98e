//! Test support shared by the modules' unit tests.

use std::path::PathBuf;

/// A path inside a new temporary directory, which lives as long as the
/// returned guard; the path's parents are not created.
pub fn temp_path(rel: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(rel);
    (dir, path)
}
