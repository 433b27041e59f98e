//! metal.torrent: the fetch's peer-to-peer path. The swarm itself runs in
//! the separate `metalroot-torrent` binary (librqbit); this module gets the
//! metainfo over HTTP, runs that binary, fills the pieces the swarm did not
//! deliver from the HTTP mirrors by range request, and leaves the whole
//! file for the fetch to verify with its own SHA-256 / signature.
//! It also writes the real root's seeding unit.

use crate::args::Argv;
use crate::sys::{cmd, http};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use reqwest::blocking::Client;
use reqwest::header::RANGE;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::info;

// The helper's state file, defined once for both binaries.
#[path = "../torrent/state.rs"]
mod state;
use state::State;

/// Where the package puts the helper.
pub const HELPER: &str = "/usr/bin/metalroot-torrent";
/// The real root's seeding unit, written by the fetch and enabled by the
/// hand-over.
pub const SEED_UNIT: &str = "/run/metalroot/metalroot-seed.service";
/// The helper's copy that the real root runs (it need not have the package).
pub const SEED_HELPER: &str = "/run/metalroot/bin/metalroot-torrent";
/// The initrd's CA bundle, for the seeder: librqbit will not start without
/// one (it builds a TLS client for trackers), and the real root may have none.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SEED_CA: &str = "/run/metalroot/ca-certificates.crt";
pub const DEFAULT_PORT: u16 = 6881;
pub const DEFAULT_UPLOAD: u64 = 25 << 20;
pub const DEFAULT_TIMEOUT: u64 = 20;
pub const DEFAULT_SEED: u64 = 600;
/// Peers allowed when metal.torrent-allow is not given: the private ranges.
pub const DEFAULT_ALLOW: &[&str] = &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

/// The fetch's metal.torrent options.
#[derive(Args, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TorrentOpts {
    /// The image's .torrent: an http(s) URL, or a magnet link whose xs=
    /// names the metainfo's URL (metal.torrent).
    #[arg(long)]
    pub torrent: Option<String>,
    /// A peer (ip:port); repeatable (metal.torrent-peers).
    #[arg(long = "torrent-peer")]
    pub torrent_peers: Vec<SocketAddr>,
    /// Networks peers may be in (CIDR); repeatable (metal.torrent-allow).
    /// None given: the private ranges.
    #[arg(long = "torrent-allow")]
    pub torrent_allow: Vec<String>,
    /// Port to accept peers on (metal.torrent-port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub torrent_port: u16,
    /// Upload limit, bytes per second (metal.torrent-upload).
    #[arg(long, default_value_t = DEFAULT_UPLOAD)]
    pub torrent_upload: u64,
    /// Leave the swarm when no piece arrived for this many seconds
    /// (metal.torrent-timeout); the mirrors send the rest.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT)]
    pub torrent_timeout: u64,
    /// Seconds the booted system seeds the image; 0: not at all
    /// (metal.torrent-seed).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub torrent_seed: u64,
    /// The helper binary (tests run it from the build tree).
    #[arg(long, default_value = HELPER, hide = true)]
    pub torrent_helper: PathBuf,
}

impl Default for TorrentOpts {
    fn default() -> Self {
        TorrentOpts {
            torrent: None,
            torrent_peers: Vec::new(),
            torrent_allow: Vec::new(),
            torrent_port: DEFAULT_PORT,
            torrent_upload: DEFAULT_UPLOAD,
            torrent_timeout: DEFAULT_TIMEOUT,
            torrent_seed: DEFAULT_SEED,
            torrent_helper: PathBuf::from(HELPER),
        }
    }
}

impl TorrentOpts {
    /// All of them, defaults too, once a torrent is set: `systemctl cat`
    /// then shows what the swarm may do.
    pub(crate) fn push(&self, a: &mut Argv) {
        let Some(t) = &self.torrent else { return };
        a.opt("torrent", t);
        for p in &self.torrent_peers {
            a.opt("torrent-peer", p);
        }
        for n in self.allowed() {
            a.opt("torrent-allow", n);
        }
        a.opt("torrent-port", self.torrent_port);
        a.opt("torrent-upload", self.torrent_upload);
        a.opt("torrent-timeout", self.torrent_timeout);
        a.opt("torrent-seed", self.torrent_seed);
        if self.torrent_helper != Path::new(HELPER) {
            a.path("torrent-helper", Some(&self.torrent_helper));
        }
    }

    /// The helper's options that `fetch` and `seed` share: the peers, the
    /// allowed networks, the port and the upload limit.
    fn push_swarm(&self, a: &mut Argv) {
        for p in &self.torrent_peers {
            a.opt("peer", p);
        }
        for n in self.allowed() {
            a.opt("allow", n);
        }
        a.opt("listen", format!("[::]:{}", self.torrent_port));
        a.opt("upload-limit", self.torrent_upload.min(u32::MAX.into()));
    }

    pub fn allowed(&self) -> Vec<String> {
        if self.torrent_allow.is_empty() {
            DEFAULT_ALLOW.iter().map(|s| s.to_string()).collect()
        } else {
            self.torrent_allow.clone()
        }
    }
}

/// metal.torrent's value: where the metainfo is, and the info hash a
/// magnet link pins it to.
#[derive(Debug, PartialEq, Eq)]
pub struct Metainfo {
    pub url: String,
    pub info_hash: Option<String>,
}

/// Parses metal.torrent: `http(s)://…` or
/// `magnet:?xt=urn:btih:<40 hex>&xs=<http(s) URL of the .torrent>`.
pub fn metainfo(v: &str) -> Result<Metainfo, String> {
    let http_url = |s: &str| -> Result<String, String> {
        let u = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
        match u.scheme() {
            "http" | "https" if u.host_str().is_some() => Ok(s.to_string()),
            _ => Err("expected an http(s) URL of the .torrent".into()),
        }
    };
    if !v.starts_with("magnet:") {
        return Ok(Metainfo {
            url: http_url(v)?,
            info_hash: None,
        });
    }
    let u = url::Url::parse(v).map_err(|e| format!("not a magnet link ({e})"))?;
    let (mut hash, mut xs) = (None, None);
    for (k, val) in u.query_pairs() {
        match k.as_ref() {
            "xt" => hash = val.strip_prefix("urn:btih:").map(str::to_ascii_lowercase),
            "xs" => xs = Some(val.into_owned()),
            _ => {}
        }
    }
    let hash = hash.ok_or("the magnet link has no xt=urn:btih:")?;
    if hash.len() != 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the magnet link's btih is not 40 hexadecimal digits".into());
    }
    let xs = xs.ok_or("the magnet link has no xs= (the .torrent's http(s) URL): metalroot does not look metainfo up in a DHT")?;
    Ok(Metainfo {
        url: http_url(&xs)?,
        info_hash: Some(hash),
    })
}

/// Where the image's bytes came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources {
    /// Bytes from peers (and seeds).
    pub swarm: u64,
    /// Bytes from the HTTP mirrors by range request.
    pub mirrors: u64,
    /// Bytes this node uploaded to peers while it fetched.
    pub uploaded: u64,
}

/// The metainfo, kept beside the image for the booted system's seeder.
pub fn metainfo_path(image: &Path) -> PathBuf {
    PathBuf::from(format!("{}.torrent", image.display()))
}

/// Fetches the image `dest` into `part` from the swarm, the rest from
/// `mirrors` (the image's http(s) URLs). Unverified: the caller checks the whole
/// file.
pub fn fetch(
    client: &Client,
    o: &TorrentOpts,
    mirrors: &[String],
    dest: &Path,
    part: &Path,
) -> Result<Sources> {
    let t = o.torrent.as_deref().context("no metal.torrent")?;
    let m = metainfo(t).map_err(|e| anyhow!("metal.torrent={t}: {e}"))?;
    let helper = &o.torrent_helper;
    if !helper.exists() {
        bail!(
            "{} is not in this initrd (dracut: metalroot_torrent=yes; mkosi: keep the package's file)",
            helper.display()
        );
    }
    let bytes = http::get_small(client, &m.url, "the .torrent", Duration::from_secs(30))?;
    let meta = metainfo_path(dest);
    write_file(&meta, &bytes)?;
    let dir = part.with_extension("swarm");
    let _ = fs::remove_dir_all(&dir);
    let state = dir.with_extension("swarm.json");
    let mut a = Argv::default();
    a.0.push(helper.display().to_string());
    a.0.push("fetch".into());
    a.path("torrent", Some(&meta));
    a.path("dir", Some(&dir));
    a.path("state", Some(&state));
    o.push_swarm(&mut a);
    a.opt("stall", o.torrent_timeout);
    a.opt_if("info-hash", m.info_hash.as_ref());
    info!(
        "torrent: joining the swarm for {} ({} peers given)",
        m.url,
        o.torrent_peers.len()
    );
    // Whatever happens, no half image is left beside the one the mirrors
    // send next (in RAM with metal.ram, it would hold the memory twice).
    let outcome = cmd::run_logged(&a.0).and_then(|()| {
        serde_json::from_slice::<State>(
            &fs::read(&state).with_context(|| format!("reading {}", state.display()))?,
        )
        .with_context(|| format!("parsing {}", state.display()))
    });
    let _ = fs::remove_file(&state);
    let s = match outcome {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    if s.downloaded == 0 {
        let _ = fs::remove_dir_all(&dir);
        bail!(
            "the swarm sent nothing in {:.0} s (metal.torrent-timeout={})",
            s.seconds,
            o.torrent_timeout
        );
    }
    fs::rename(&s.file, part)
        .with_context(|| format!("moving {} to {}", s.file.display(), part.display()))?;
    let _ = fs::remove_dir_all(&dir);
    let missing: u64 = s.missing.iter().map(|r| r.1).sum();
    info!(
        "torrent: {} of {} bytes from the swarm in {:.1} s ({} uploaded to peers){}",
        s.length - missing,
        s.length,
        s.seconds,
        s.uploaded,
        if missing > 0 {
            format!(
                "; {missing} bytes in {} ranges from the mirrors by range request",
                s.missing.len()
            )
        } else {
            String::new()
        }
    );
    let f = fs::OpenOptions::new()
        .write(true)
        .open(part)
        .with_context(|| format!("opening {}", part.display()))?;
    f.set_len(s.length)
        .with_context(|| format!("sizing {}", part.display()))?;
    for &(off, len) in &s.missing {
        fill(client, mirrors, &f, off, len)?;
    }
    f.sync_all()
        .with_context(|| format!("fsync {}", part.display()))?;
    Ok(Sources {
        swarm: s.length - missing,
        mirrors: missing,
        uploaded: s.uploaded,
    })
}

/// Bytes `off..off+len` of the image from the mirrors, in order, each
/// taking over where the last one stopped.
fn fill(client: &Client, mirrors: &[String], f: &File, off: u64, len: u64) -> Result<()> {
    let mut done = 0u64;
    let mut last = anyhow!("no http(s) mirror to fill from");
    for url in mirrors {
        let shown = crate::redact::redact_secret_url(url);
        let r = client
            .get(url)
            .header(RANGE, format!("bytes={}-{}", off + done, off + len - 1))
            .send();
        let mut resp = match r {
            Ok(r) if r.status() == StatusCode::PARTIAL_CONTENT => r,
            Ok(r) => {
                last = anyhow!("range request to {shown}: {}", r.status());
                continue;
            }
            Err(e) => {
                last = anyhow!("range request to {shown}: {}", e.without_url());
                continue;
            }
        };
        let mut buf = vec![0u8; 1 << 20];
        while done < len {
            match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let n = n.min((len - done) as usize);
                    f.write_all_at(&buf[..n], off + done)
                        .context("writing the image")?;
                    done += n as u64;
                }
                Err(e) => {
                    last = anyhow!("reading from {shown}: {e}");
                    break;
                }
            }
        }
        if done == len {
            return Ok(());
        }
    }
    Err(last).with_context(|| {
        format!(
            "filling bytes {}-{} from the mirrors",
            off + done,
            off + len - 1
        )
    })
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
}

/// The real root's seeding unit for the verified image at `image`: the
/// helper is copied under /run, which survives switch-root, so the root
/// need not have the package. Bounded (`--for`, RuntimeMaxSec=), idle I/O,
/// and only the allowed networks (IPAddressAllow=, besides the helper's own
/// allowlist). Nothing without metal.torrent, with metal.torrent-seed=0, or
/// without the metainfo beside the image.
pub fn write_seed_unit(o: &TorrentOpts, image: &Path) -> Result<()> {
    if o.torrent.is_none() || o.torrent_seed == 0 || !metainfo_path(image).exists() {
        return Ok(());
    }
    let helper = Path::new(SEED_HELPER);
    if let Some(d) = helper.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::copy(&o.torrent_helper, helper)
        .with_context(|| format!("copying {} to {SEED_HELPER}", o.torrent_helper.display()))?;
    let ca = match fs::copy(CA_BUNDLE, SEED_CA) {
        Ok(_) => Some(Path::new(SEED_CA)),
        Err(e) => {
            info!(
                "torrent: no CA bundle for the seeder ({CA_BUNDLE}: {e}); it uses the real root's"
            );
            None
        }
    };
    write_file(Path::new(SEED_UNIT), seed_unit(o, image, ca).as_bytes())?;
    info!(
        "torrent: the booted system seeds {} for {} s (metal.torrent-seed)",
        image.display(),
        o.torrent_seed
    );
    Ok(())
}

fn seed_unit(o: &TorrentOpts, image: &Path, ca: Option<&Path>) -> String {
    let mut a = Argv::default();
    a.0.push(SEED_HELPER.into());
    a.0.push("seed".into());
    a.path("torrent", Some(&metainfo_path(image)));
    a.path("file", Some(image));
    o.push_swarm(&mut a);
    a.opt("for", o.torrent_seed);
    format!(
        "# Written by metalroot fetch in the initrd (metal.torrent-seed); lives in /run.\n\
         [Unit]\n\
         Description=metalroot: seed the boot image to the fleet for {secs} s\n\
         Documentation=man:metalroot(7)\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         ConditionPathExists={image}\n\
         \n\
         [Service]\n\
         Type=exec\n\
         {env}\
         ExecStart={exec}\n\
         RuntimeMaxSec={max}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         IPAddressDeny=any\n\
         IPAddressAllow={allow} localhost\n",
        secs = o.torrent_seed,
        image = image.display(),
        exec = a.0.join(" "),
        env = ca
            .map(|c| format!("Environment=SSL_CERT_FILE={}\n", c.display()))
            .unwrap_or_default(),
        max = o.torrent_seed + 60,
        allow = o.allowed().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torrent_url_or_a_magnet_with_its_metainfo() {
        assert_eq!(
            metainfo("http://10.0.2.2:8080/img.torrent").unwrap(),
            Metainfo {
                url: "http://10.0.2.2:8080/img.torrent".into(),
                info_hash: None
            }
        );
        let m = metainfo("magnet:?xt=urn:btih:0123456789ABCDEF0123456789abcdef01234567&dn=img&xs=http%3A%2F%2Fh%2Fimg.torrent").unwrap();
        assert_eq!(m.url, "http://h/img.torrent");
        assert_eq!(
            m.info_hash.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert!(metainfo("magnet:?xt=urn:btih:0123").is_err());
        assert!(
            metainfo("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567")
                .unwrap_err()
                .contains("xs=")
        );
        assert!(metainfo("ftp://h/x.torrent").is_err());
    }

    #[test]
    fn the_seed_unit_is_bounded_and_fenced() {
        let o = TorrentOpts {
            torrent: Some("http://h/img.torrent".into()),
            torrent_allow: vec!["192.168.77.0/24".into()],
            ..Default::default()
        };
        let u = seed_unit(
            &o,
            Path::new("/run/initramfs/live/LiveOS/squashfs.img"),
            Some(Path::new(SEED_CA)),
        );
        assert!(
            u.contains("Environment=SSL_CERT_FILE=/run/metalroot/ca-certificates.crt\nExecStart=")
        );
        assert!(u.contains("ExecStart=/run/metalroot/bin/metalroot-torrent seed --torrent /run/initramfs/live/LiveOS/squashfs.img.torrent --file /run/initramfs/live/LiveOS/squashfs.img --allow 192.168.77.0/24 --listen [::]:6881 --upload-limit 26214400 --for 600\n"));
        assert!(u.contains("RuntimeMaxSec=660\n"));
        assert!(u.contains("IPAddressDeny=any\nIPAddressAllow=192.168.77.0/24 localhost\n"));
    }

    #[test]
    fn the_private_ranges_when_no_network_is_given() {
        assert_eq!(TorrentOpts::default().allowed().len(), 4);
    }
}
