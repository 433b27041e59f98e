//! What the wipe checks before it destroys anything: the chosen disks hold
//! the layout, the tools the wipe and the layout run are here, and the image
//! can be had from at least one source. Every failed check is reported, not
//! only the first, each naming the parameter and the value behind it.

use crate::kinds::ImageSource;
use crate::kinds::Verify;
use crate::steps::fetch::{
    http_signature, label_signature, on_label, sidecar, trust_mode, trusted_signature, FetchOpts,
    ImageArgs,
};
use crate::steps::layout::LayoutOpts;
use crate::sys::disks::{for_arrays, Disk, ARRAY_MIN_BYTES};
use crate::sys::http;
use crate::sys::retry::backoff;
use crate::sys::trust::TrustedKey;
use reqwest::header::RANGE;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What the wipe and the layout run, in the order they run them.
pub const TOOLS: &[&str] = &[
    "lvm",
    "mdadm",
    "wipefs",
    "partprobe",
    "sgdisk",
    "mkfs.vfat",
    "mkfs.xfs",
];

/// The disks the arrays would take: enough of them, each large enough. An
/// eligible disk below mdsquash's 350 GiB is named when it leaves the
/// arrays short (it would be wiped, never used).
pub fn disks(eligible: &[Disk], wanted: u64, layout: &LayoutOpts) -> Vec<String> {
    let mut failed = Vec::new();
    let chosen = for_arrays(eligible, wanted);
    if (chosen.len() as u64) < wanted {
        failed.push(format!(
            "metal.disks={wanted}: only {} eligible disk(s) of {ARRAY_MIN_BYTES} bytes (350 GiB, dracut-metal-mdsquash's smallest array disk) or more",
            chosen.len()
        ));
        for d in eligible.iter().filter(|d| d.size < ARRAY_MIN_BYTES) {
            failed.push(format!(
                "{} has {} bytes, below {ARRAY_MIN_BYTES}: not taken for the arrays",
                d.dev(),
                d.size
            ));
        }
    }
    let need = layout.bytes_needed();
    for d in chosen.iter().filter(|d| d.size < need) {
        failed.push(format!(
            "{} has {} bytes, the layout needs {need} (metal.sqfs-md-size={} \
             metal.oval-md-size={} metal.aux-md-size={}: partitions end at their \
             sum in GB, plus the backup GPT)",
            d.dev(),
            d.size,
            layout.sqfs_size_gb,
            layout.oval_size_gb,
            layout.aux_size_gb
        ));
    }
    failed
}

/// The checks that read only this machine: the disks the layout takes and
/// the tools on `PATH` (the wipe, and `plan --scan-disks`).
pub fn local(eligible: &[Disk], wanted: u64, layout: &LayoutOpts) -> Vec<String> {
    let mut failed = disks(eligible, wanted, layout);
    failed.extend(tools(&std::env::var("PATH").unwrap_or_default(), TOOLS));
    failed
}

/// The LUKS key the boot will need is there as a systemd credential (the
/// wipe unit loads it too). Its contents are never read into a message.
pub fn luks_credential(dir: Option<&Path>, name: &str) -> Option<String> {
    let Some(dir) = dir else {
        return Some(format!(
            "metal.luks.key=cred:{name}: no $CREDENTIALS_DIRECTORY (the wipe unit got no credential)"
        ));
    };
    match std::fs::metadata(dir.join(name)) {
        Ok(m) if m.len() > 0 => None,
        Ok(_) => Some(format!(
            "metal.luks.key=cred:{name}: the credential is empty"
        )),
        Err(e) => Some(format!(
            "metal.luks.key=cred:{name}: not in {}: {e}",
            dir.display()
        )),
    }
}

/// The LUKS key the boot will need can be fetched from its URL, retried
/// within metal.fetch-timeout. The key is dropped at once; the URL's
/// secrets never reach a message (`http::get_small` shows it redacted).
pub fn luks_key_url(url_file: &Path, opts: &FetchOpts) -> Option<String> {
    let timeout = Duration::from_secs(opts.timeout);
    match http::get_small_from_url_file(url_file, &opts.http, timeout, "the LUKS key") {
        Ok(key) if !key.is_empty() => {
            info!("preflight: the LUKS key can be fetched");
            None
        }
        Ok(_) => Some("metal.luks.key: the key URL answered with an empty body".to_string()),
        Err(e) => Some(format!("metal.luks.key: {e:#}")),
    }
}

/// The tools missing from `PATH`.
pub fn tools(path: &str, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| !path.split(':').any(|d| Path::new(d).join(n).is_file()))
        .map(|n| format!("{n} is not in this initrd (PATH={path})"))
        .collect()
}

/// The image answers from at least one source, retried on the network
/// schedule until metal.fetch-timeout (one round only when `retry` is
/// false: a dry run); `None` when it does.
pub fn image(src: &ImageArgs, opts: &FetchOpts, retry: bool) -> Option<String> {
    let sources = match src.resolve() {
        Ok(s) => s,
        Err(e) => return Some(format!("{e:#}")),
    };
    let urls = src.urls(&sources);
    let client = match http::client(&opts.http) {
        Ok(c) => c,
        Err(e) => return Some(format!("{e:#}")),
    };
    // A node that trusts a key boots only a signed image: an unsigned one
    // would be refused after the wipe.
    let keys = match trust_mode(opts) {
        Ok((Verify::Signature, keys)) => Some(keys),
        Ok(_) => None,
        Err(e) => return Some(format!("{e:#}")),
    };
    let timeout = Duration::from_secs(opts.timeout);
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut why = Vec::new();
        for (s, url) in sources.iter().zip(&urls) {
            let shown = crate::redact::redact_secret_url(url);
            match answers(&client, s, url, &src.image, keys.as_deref()) {
                Ok(()) => {
                    info!(
                        "preflight: the image answers at {shown}{}",
                        if keys.is_some() {
                            ", signed by a trusted key"
                        } else {
                            ""
                        }
                    );
                    // The fetch warns the same way; said here before the wipe.
                    if opts.sha256.is_none()
                        && keys.is_none()
                        && opts.verify != Some(Verify::None)
                        && matches!(s, ImageSource::Url(_))
                        && sidecar(&client, std::slice::from_ref(url)).is_none()
                    {
                        warn!("preflight: no metal.sha256 and no {shown}.sha256: the image will not be verified");
                    }
                    return None;
                }
                Err(e) => why.push(format!("{shown}: {e}")),
            }
        }
        let why = why.join("; ");
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !retry {
            return Some(format!(
                "metal.server: the image answered from no source within \
                 metal.fetch-timeout={} s ({why})",
                timeout.as_secs()
            ));
        }
        let wait = backoff(attempt, left);
        warn!(
            "preflight: the image answered from no source ({why}); nothing is wiped; \
             retrying in {} s",
            wait.as_secs()
        );
        crate::sys::notify::status(&format!(
            "preflight: image server not answering, retrying in {} s",
            wait.as_secs()
        ));
        std::thread::sleep(wait);
    }
}

/// One source's answer: the first byte of the image over http(s), or the
/// file on the labelled filesystem; with trusted `keys`, also a signature by
/// one of them next to it (read in the same mount).
fn answers(
    client: &reqwest::blocking::Client,
    s: &ImageSource,
    url: &str,
    image: &str,
    keys: Option<&[TrustedKey]>,
) -> Result<(), String> {
    let signed = |text: &dyn Fn() -> anyhow::Result<Option<String>>| match keys {
        Some(keys) => trusted_signature(keys, url, text)
            .map(|_| ())
            .map_err(|e| format!("the image answers, but {e:#}")),
        None => Ok(()),
    };
    match s {
        ImageSource::Url(_) => {
            let r = client
                .get(url)
                .header(RANGE, "bytes=0-0")
                .send()
                .map_err(|e| e.without_url().to_string())?;
            if !r.status().is_success() {
                return Err(r.status().to_string());
            }
            signed(&|| http_signature(client, url))
        }
        ImageSource::Labelled { dir, label } => on_label(label, |mnt| {
            if !mnt.join(dir).join(image).is_file() {
                anyhow::bail!("no {dir}/{image} on LABEL={label}")
            }
            Ok(signed(&|| label_signature(mnt, dir, image)))
        })
        .map_err(|e| format!("{e:#}"))?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, gib: u64) -> Disk {
        Disk {
            name: name.into(),
            size: gib << 30,
            ..Disk::default()
        }
    }

    #[test]
    fn small_disks_and_too_few_are_each_reported() {
        let l = LayoutOpts::default();
        // Below mdsquash's 350 GiB: named, never taken for the arrays.
        let f = disks(&[disk("sda", 200), disk("sdb", 400)], 2, &l);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].contains("metal.disks=2") && f[0].contains("only 1"),
            "{f:?}"
        );
        assert!(
            f[1].contains("/dev/sda has 214748364800 bytes, below 375809638400"),
            "{f:?}"
        );
        // Large enough for mdsquash, too small for the sizes asked.
        let big = LayoutOpts {
            oval_size_gb: 200,
            aux_size_gb: 200,
            ..LayoutOpts::default()
        };
        let f = disks(&[disk("sda", 360), disk("sdb", 400)], 2, &big);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("/dev/sda has 386547056640 bytes, the layout needs 425001484288")
                && f[0].contains("metal.oval-md-size=200"),
            "{f:?}"
        );
        assert!(disks(&[disk("sda", 400), disk("sdb", 400)], 2, &l).is_empty());
    }

    fn src(url: &str) -> ImageArgs {
        ImageArgs {
            sources: vec![ImageSource::Url(url.into())],
            source_files: Vec::new(),
            image: "squashfs.img".into(),
            exact_url: false,
            order: Vec::new(),
        }
    }

    #[test]
    fn the_luks_key_is_checked_without_showing_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("luksKey"), "s3cret-key").unwrap();
        std::fs::write(d.path().join("empty"), "").unwrap();
        assert_eq!(luks_credential(Some(d.path()), "luksKey"), None);
        let e = luks_credential(Some(d.path()), "empty").unwrap();
        assert!(
            e.contains("metal.luks.key=cred:empty: the credential is empty"),
            "{e}"
        );
        assert!(luks_credential(Some(d.path()), "other")
            .unwrap()
            .contains("not in"));
        assert!(luks_credential(None, "luksKey")
            .unwrap()
            .contains("no $CREDENTIALS_DIRECTORY"));
        // A URL nothing answers: the message names the parameter, never
        // the signature in the URL.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let f = d.path().join("luks-key.url");
        std::fs::write(
            &f,
            format!("http://127.0.0.1:{port}/k?X-Amz-Signature=t0ken"),
        )
        .unwrap();
        let opts = FetchOpts {
            timeout: 1,
            ..FetchOpts::default()
        };
        let e = luks_key_url(&f, &opts).unwrap();
        assert!(
            e.starts_with("metal.luks.key: fetching the LUKS key from"),
            "{e}"
        );
        assert!(!e.contains("t0ken"), "{e}");
        assert!(f.exists(), "the check leaves the secret for the LUKS step");
        let e = luks_key_url(&d.path().join("missing.url"), &opts).unwrap();
        assert!(e.starts_with("metal.luks.key: reading"), "{e}");
    }

    /// An HTTP server on 127.0.0.1 for `n` requests, each answered with
    /// `answer(request)`'s status line and body; returns its URL.
    fn serve(n: usize, answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for c in l.incoming().take(n) {
                let mut c = c.unwrap();
                let mut buf = [0u8; 4096];
                let got = c.read(&mut buf).unwrap_or(0);
                let (status, body) = answer(&String::from_utf8_lossy(&buf[..got]));
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    #[test]
    fn the_image_answers_or_the_message_names_server_and_timeout() {
        let up = serve(2, |_| ("206 Partial Content", "h".into()));
        let opts = FetchOpts {
            timeout: 1,
            ..FetchOpts::default()
        };
        assert_eq!(image(&src(&up), &opts, false), None);
        // Nothing listens on the port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = format!("http://127.0.0.1:{port}/");
        let e = image(&src(&down), &opts, false).unwrap();
        assert!(
            e.starts_with(
                "metal.server: the image answered from no source within metal.fetch-timeout=1 s"
            ) && e.contains(&format!("{down}squashfs.img")),
            "{e}"
        );
    }

    /// A node that trusts a key: an image without its signature is not
    /// worth a wipe; with a signature by that key it is.
    #[test]
    fn a_trusted_key_needs_the_signature_before_the_wipe() {
        let answer = |sig: Option<&'static str>| {
            move |req: &str| match (req.contains(".minisig"), sig) {
                (true, Some(sig)) => ("200 OK", sig.to_string()),
                (true, None) => ("404 Not Found", String::new()),
                (false, _) => ("206 Partial Content", "h".into()),
            }
        };
        let keys = tempfile::tempdir().unwrap();
        std::fs::write(
            keys.path().join("site.pub"),
            include_str!("../../tests/trust/test.pub"),
        )
        .unwrap();
        let opts = FetchOpts {
            timeout: 1,
            keys_dir: keys.path().to_path_buf(),
            ..FetchOpts::default()
        };
        let unsigned = serve(2, answer(None));
        let e = image(&src(&unsigned), &opts, false).unwrap();
        assert!(
            e.contains("the image answers, but no signature at")
                && e.contains("squashfs.img.minisig"),
            "{e}"
        );
        let signed = serve(
            2,
            answer(Some(include_str!("../../tests/trust/image.bin.minisig"))),
        );
        assert_eq!(image(&src(&signed), &opts, false), None);
    }

    #[test]
    fn missing_tools_are_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("mdadm"), "").unwrap();
        let path = d.path().display().to_string();
        let f = tools(&path, &["mdadm", "sgdisk"]);
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("sgdisk is not in this initrd"), "{f:?}");
    }
}
