//! `metalroot measure`: extends a TPM 2.0 PCR with the SHA-256 of the image
//! this boot runs (from the fetch's image record), with tpm2-tools, and
//! appends the event to the userspace event log systemd keeps for its own
//! measurements, so that an attestation can replay it. No TPM: a log line.

use crate::args::Argv;
use crate::kinds::{DEFAULT_TPM_PCR, EVENT_LOG, IMAGE_RECORD};
use crate::sys::cmd;
use crate::sys::image_record::{ImageRecord, Measured};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::info;

/// The kernel's TPM resource manager; tpm2-tools talk to it.
const TPM_DEVICE: &str = "/dev/tpmrm0";

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct MeasureArgs {
    /// The PCR extended with the image's SHA-256 (metal.tpm-pcr).
    #[arg(long, default_value_t = DEFAULT_TPM_PCR, value_parser = clap::value_parser!(u64).range(0..24))]
    pub pcr: u64,
    /// Measure only an image whose signature was checked (the default: a
    /// site that installed a trusted key opted in; metal.tpm-pcr=N clears it).
    #[arg(long)]
    pub when_signed: bool,
    /// The fetch's record of this boot's image.
    #[arg(long, default_value = IMAGE_RECORD)]
    pub record: PathBuf,
    /// The event log the measurement is appended to.
    #[arg(long, default_value = EVENT_LOG)]
    pub event_log: PathBuf,
}

impl MeasureArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        a.opt("pcr", self.pcr);
        a.flag("when-signed", self.when_signed);
        if self.record != Path::new(IMAGE_RECORD) {
            a.path("record", Some(&self.record));
        }
        if self.event_log != Path::new(EVENT_LOG) {
            a.path("event-log", Some(&self.event_log));
        }
        a.0
    }
}

pub fn run(a: MeasureArgs) -> Result<()> {
    let mut rec = ImageRecord::read(&a.record)?;
    if rec.sha256.len() != 64 || !rec.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{}: no sha256 of the image to measure (got {:?})",
            a.record.display(),
            rec.sha256
        );
    }
    if a.when_signed && rec.signature.is_none() {
        info!(
            "the image was not signature-checked (metal.verify={}): not measured (metal.tpm-pcr=N measures every image)",
            rec.verify
        );
        return Ok(());
    }
    if !Path::new(TPM_DEVICE).exists() {
        info!("no TPM 2.0 ({TPM_DEVICE} is missing): the image is not measured");
        return Ok(());
    }
    if rec.measured.is_some() {
        // Extending twice would make the PCR unpredictable from the image.
        info!(
            "the image was measured already in this boot ({}): not again",
            a.record.display()
        );
        return Ok(());
    }
    cmd::run(&[
        "tpm2_pcrextend",
        "--tcti",
        &format!("device:{TPM_DEVICE}"),
        &format!("{}:sha256={}", a.pcr, rec.sha256),
    ])
    .context("extending the PCR")?;
    rec.measured = Some(Measured {
        pcr: a.pcr,
        bank: "sha256".into(),
    });
    rec.write(&a.record)?;
    append_event(&a.event_log, &event(a.pcr, &rec))?;
    info!(
        "measured the image (sha256 {}) into PCR {} (sha256 bank); event logged in {}",
        rec.sha256,
        a.pcr,
        a.event_log.display()
    );
    Ok(())
}

/// One CEL-JSON record: the PCR, the digest extended (the image's SHA-256
/// itself) and what it stands for.
fn event(pcr: u64, rec: &ImageRecord) -> serde_json::Value {
    serde_json::json!({
        "pcr": pcr,
        "digests": [{"hashAlg": "sha256", "digest": rec.sha256}],
        "content_type": "metalroot",
        "content": {
            "eventType": "image",
            "url": rec.url,
            "size": rec.size,
            "verify": rec.verify,
            "keyId": rec.signature.as_ref().map(|s| s.key_id.clone()),
            "trustedComment": rec.signature.as_ref().map(|s| s.trusted_comment.clone()),
        },
    })
}

/// JSON-SEQ (RFC 7464): RS, the record, LF; appended under the lock that
/// systemd's writers take on the same file.
fn append_event(path: &Path, record: &serde_json::Value) -> Result<()> {
    let mut f = crate::sys::lock::exclusive(path)?;
    let line = format!("\x1e{record}\n");
    f.write_all(line.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_seq_records_of_the_image_digest() {
        let (_d, log) = crate::testing::temp_path("log/tpm2-measure.log");
        let rec = ImageRecord {
            url: "http://h/squashfs.img".into(),
            sha256: "ab".repeat(32),
            size: 7,
            verify: "signature".into(),
            ..ImageRecord::default()
        };
        append_event(&log, &event(15, &rec)).unwrap();
        append_event(&log, &event(15, &rec)).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let recs: Vec<&str> = text.split('\x1e').filter(|r| !r.is_empty()).collect();
        assert_eq!(recs.len(), 2);
        let v: serde_json::Value = serde_json::from_str(recs[0].trim_end()).unwrap();
        assert_eq!(v["pcr"], 15);
        assert_eq!(v["digests"][0]["digest"], "ab".repeat(32));
        assert_eq!(v["content"]["url"], "http://h/squashfs.img");
    }

    #[test]
    fn argv_round_trips() {
        use crate::cli::{Cli, Cmd};
        let a = MeasureArgs {
            pcr: 9,
            when_signed: true,
            record: PathBuf::from(IMAGE_RECORD),
            event_log: PathBuf::from("/tmp/x.log"),
        };
        let argv = Cmd::Measure(a.clone()).to_argv();
        let Cmd::Measure(back) = Cli::try_parse_ordered(&argv).unwrap().cmd else {
            panic!("not measure");
        };
        assert_eq!(back, a);
        assert!(Cli::try_parse_ordered(["metalroot", "measure", "--pcr", "24"]).is_err());
    }
}
