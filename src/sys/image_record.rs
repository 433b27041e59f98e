//! This boot's image record (`/run/metalroot/image.json`): the fetch writes
//! it, the measure step adds the PCR, and it survives switch-root with /run,
//! so the booted system can tell which (signed) image it runs.

use crate::sys::trust::Verdict;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Where it came from (a password in it is hidden).
    pub url: String,
    /// The image file that is booted.
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// What it was checked against: signature, sha256 or none.
    pub verify: String,
    /// The trusted key and the signature's trusted comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
    /// Fetched in this boot, or found unchanged on disk.
    pub fetched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
    /// metal.torrent: the bytes from the swarm and from the mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrent: Option<crate::sys::swarm::Sources>,
}

/// Where the image's SHA-256 was extended into the TPM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    pub pcr: u64,
    pub bank: String,
}

impl ImageRecord {
    pub fn read(p: &Path) -> Result<ImageRecord> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }

    /// Written whole through a temporary file: a reader never sees half.
    pub fn write(&self, p: &Path) -> Result<()> {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = p.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("renaming {}", tmp.display()))
    }
}
