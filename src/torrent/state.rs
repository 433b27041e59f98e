//! What `metalroot-torrent fetch` writes to `--state` when it stops, and
//! metalroot's fetch step reads back: one definition for both binaries,
//! which include this file by path.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    /// The file as written (`--dir` joined with the torrent's name).
    pub file: PathBuf,
    pub length: u64,
    /// Byte ranges (offset, length) not downloaded or not intact; none when
    /// the file is complete.
    pub missing: Vec<(u64, u64)>,
    pub downloaded: u64,
    pub uploaded: u64,
    pub seconds: f64,
}
