//! `metalroot fetch`: puts the squashfs image at `<dir>/<image>` on the image
//! array (or in RAM), verified with SHA-256 computed while the bytes stream
//! to disk, resumable with Range/If-Range, failing over between servers, and
//! skipped on a reboot when the local copy still matches.

use crate::args::Argv;
use crate::kinds::{ImageSource, DEFAULT_FETCH_TIMEOUT, DEFAULT_LIVE_DIR, DEFAULT_SQUASHIMG};
use crate::sys::http::HttpOpts;
use crate::sys::retry::backoff;
use crate::sys::{hashed_copy, http, mounts, notify};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use reqwest::blocking::{Client, Response};
use reqwest::header::{ETAG, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};
use url::Url;

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct FetchArgs {
    #[command(flatten)]
    pub src: ImageArgs,
    /// Store the image in this file (RAM).
    #[arg(long, conflicts_with = "dest_label")]
    pub dest_file: Option<PathBuf>,
    /// Store the image on the filesystem with this label.
    #[arg(long, requires = "mount")]
    pub dest_label: Option<String>,
    /// Where to mount that filesystem.
    #[arg(long)]
    pub mount: Option<PathBuf>,
    /// Directory on that filesystem (rd.live.dir).
    #[arg(long, default_value = DEFAULT_LIVE_DIR)]
    pub dir: String,
    #[command(flatten)]
    pub opts: FetchOpts,
}

/// Where the image comes from: the fetch's, and the wipe's preflight's,
/// which checks it can be had before anything is destroyed.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ImageArgs {
    /// Image server, tried in order (metal.server).
    #[arg(long = "source")]
    pub sources: Vec<ImageSource>,
    /// A file holding a source URL with a password (0600, under /run).
    #[arg(long = "source-file")]
    pub source_files: Vec<PathBuf>,
    /// Image file name (rd.live.squashimg).
    #[arg(long, default_value = DEFAULT_SQUASHIMG)]
    pub image: String,
    /// The source URL is the image itself (root=live:<url>).
    #[arg(long)]
    pub exact_url: bool,
    /// The order of `--source` and `--source-file` on the command line,
    /// which clap's two lists lose (`Cli::try_parse_ordered` fills it).
    #[arg(skip)]
    pub order: Vec<SourceKind>,
}

/// The fetch's options that come straight from the command line
/// (`Config::fetch`): a new one is a field here and a row in the parameter
/// table.
#[derive(Args, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FetchOpts {
    /// Expected SHA-256 (metal.sha256); else the server's <image>.sha256.
    #[arg(long)]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub http: HttpOpts,
    /// Give up after this many seconds in all (metal.fetch-timeout).
    #[arg(long, default_value_t = DEFAULT_FETCH_TIMEOUT)]
    pub timeout: u64,
}

impl Default for FetchOpts {
    fn default() -> Self {
        FetchOpts {
            sha256: None,
            http: HttpOpts::default(),
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }
}

impl FetchOpts {
    pub(crate) fn push(&self, a: &mut Argv) {
        a.opt_if("sha256", self.sha256.as_ref());
        self.http.push(a);
        a.opt("timeout", self.timeout);
    }
}

/// Which of fetch's two source lists a source is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Url,
    File,
}

/// One source as given: a URL (or labelled directory) in argv, or a file
/// holding a URL with a password.
enum Given<'a> {
    Source(&'a ImageSource),
    File(&'a PathBuf),
}

impl ImageArgs {
    /// The sources in the order metal.server gave them: `order` interleaves
    /// the two lists; any it does not cover (a hand-written argv) follow.
    fn given(&self) -> Vec<Given<'_>> {
        let (mut urls, mut files) = (self.sources.iter(), self.source_files.iter());
        let mut out: Vec<Given> = self
            .order
            .iter()
            .filter_map(|k| match k {
                SourceKind::Url => urls.next().map(Given::Source),
                SourceKind::File => files.next().map(Given::File),
            })
            .collect();
        out.extend(urls.map(Given::Source));
        out.extend(files.map(Given::File));
        out
    }

    /// The sources in order, password URLs read from their files.
    pub fn resolve(&self) -> Result<Vec<ImageSource>> {
        let mut sources = Vec::new();
        for g in self.given() {
            sources.push(match g {
                Given::Source(u) => u.clone(),
                Given::File(f) => ImageSource::Url(crate::sys::secrets::read(f)?),
            });
        }
        if sources.is_empty() {
            bail!("no image source given (metal.server)");
        }
        Ok(sources)
    }

    /// Where each source's image is: its URL, or `file://<dir>?LABEL=…`.
    pub fn urls(&self, sources: &[ImageSource]) -> Vec<String> {
        sources
            .iter()
            .map(|s| match s {
                ImageSource::Url(u) => image_url(u, &self.image, self.exact_url),
                labelled => labelled.to_string(),
            })
            .collect()
    }

    pub(crate) fn push(&self, a: &mut Argv) {
        for g in self.given() {
            match g {
                Given::Source(u) => a.opt("source", u),
                Given::File(f) => a.opt("source-file", f.display()),
            }
        }
        a.opt("image", &self.image);
        a.flag("exact-url", self.exact_url);
    }
}

impl FetchArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv::default();
        self.src.push(&mut a);
        a.path("dest-file", self.dest_file.as_deref());
        if let Some(l) = &self.dest_label {
            // The directory matters only on a labelled filesystem.
            a.opt("dest-label", l);
            a.path("mount", self.mount.as_deref());
            a.opt("dir", &self.dir);
        }
        self.opts.push(&mut a);
        a.0
    }
}

const CHUNK: usize = 1 << 20;

/// What we remember next to the image: where it came from and its hash.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Meta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: Option<String>,
    size: u64,
}

fn meta_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".metalroot");
    PathBuf::from(s)
}

fn part_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

fn read_meta(p: &Path) -> Option<Meta> {
    serde_json::from_str(&fs::read_to_string(meta_path(p)).ok()?).ok()
}

fn write_meta(p: &Path, m: &Meta) -> Result<()> {
    let mp = meta_path(p);
    fs::write(&mp, serde_json::to_string(m)?).with_context(|| format!("writing {}", mp.display()))
}

/// The image's URL on a server: `<source>/<image>` (query kept), unless
/// the source already names the image or is the image (`exact`). A source
/// that is not a URL is returned as it is, for the download to report.
pub fn image_url(source: &str, image: &str, exact: bool) -> String {
    let Ok(mut u) = Url::parse(source) else {
        return source.to_string();
    };
    if exact || u.path().ends_with(&format!("/{image}")) {
        return source.to_string();
    }
    let path = format!("{}/{image}", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u.into()
}

/// The URL with any password hidden, for logs.
fn shown(url: &str) -> String {
    crate::redact::redact_url(url)
}

pub fn run(a: FetchArgs) -> Result<()> {
    let sources = a.src.resolve()?;
    let dest = destination(&a)?;
    let client = http::client(&a.opts.http)?;
    let deadline = Instant::now() + Duration::from_secs(a.opts.timeout);
    let urls = a.src.urls(&sources);

    let expected = match &a.opts.sha256 {
        Some(h) => Some(h.to_lowercase()),
        None => sidecar(&client, &urls),
    };
    match &expected {
        Some(h) => info!("expected sha256 {h}"),
        None => {
            warn!("no metal.sha256 and no <image>.sha256 on the server: the image is not verified")
        }
    }

    if let Some(done) = unchanged(&client, &dest, &urls, expected.as_deref())? {
        info!(
            "{} is unchanged on the server ({}); nothing downloaded",
            dest.display(),
            done
        );
        return Ok(());
    }

    let mut last_err = anyhow!("no source tried");
    let mut mismatches = 0;
    let mut attempt: u32 = 0;
    'outer: while Instant::now() < deadline {
        for (src, url) in sources.iter().zip(&urls) {
            if Instant::now() >= deadline {
                break 'outer;
            }
            attempt += 1;
            let r = match src {
                ImageSource::Labelled { dir, label } => {
                    copy_from_label(dir, label, url, &a.src.image, &dest)
                }
                ImageSource::Url(_) => download(&client, url, &dest),
            };
            match r.and_then(|m| finish(&dest, m, expected.as_deref())) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let mismatch = e.to_string().contains("sha256 mismatch");
                    warn!("fetch from {} failed: {e:#}", shown(url));
                    last_err = e;
                    if mismatch {
                        mismatches += 1;
                        if mismatches >= urls.len() {
                            break 'outer;
                        }
                    }
                    if urls.len() > 1 {
                        info!("failing over to the next server");
                    }
                }
            }
        }
        let wait = backoff(attempt, deadline.saturating_duration_since(Instant::now()));
        notify::status(&format!("retrying in {} s: {last_err:#}", wait.as_secs()));
        std::thread::sleep(wait);
    }
    Err(last_err).with_context(|| format!("could not fetch {} from any server", a.src.image))
}

fn destination(a: &FetchArgs) -> Result<PathBuf> {
    if let Some(f) = &a.dest_file {
        if let Some(p) = f.parent() {
            fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        return Ok(f.clone());
    }
    let label = a
        .dest_label
        .as_deref()
        .context("--dest-file or --dest-label is required")?;
    let mnt = a
        .mount
        .clone()
        .context("--mount is required with --dest-label")?;
    let dev = crate::sys::udev::by_label(label);
    mounts::wait_for(&dev, 90)?;
    if !mounts::is_mountpoint(&mnt) {
        mounts::mount_dev(&dev, &mnt, false)?;
    }
    let dir = mnt.join(&a.dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(&a.src.image))
}

/// `<image>.sha256` from the first server that has it.
pub(crate) fn sidecar(client: &Client, urls: &[String]) -> Option<String> {
    for url in urls.iter().filter(|u| u.starts_with("http")) {
        let Ok(mut side) = Url::parse(url) else {
            continue;
        };
        side.set_path(&format!("{}.sha256", side.path()));
        let side = String::from(side);
        match client.get(&side).send() {
            Ok(r) if r.status().is_success() => {
                let text = r.text().unwrap_or_default();
                let h = text.split_whitespace().next().unwrap_or("").to_lowercase();
                if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    info!("expected sha256 from {}", shown(&side));
                    return Some(h);
                }
                warn!("{} does not hold a sha256", shown(&side));
            }
            Ok(r) => tracing::debug!("{}: {}", shown(&side), r.status()),
            Err(e) => tracing::debug!("{}: {e}", shown(&side)),
        }
    }
    None
}

/// On a reboot: the local image is kept when its recorded hash matches the
/// expected one, or the server answers 304 to its ETag. Either way the local
/// bytes are hashed again before they are trusted.
fn unchanged(
    client: &Client,
    dest: &Path,
    urls: &[String],
    expected: Option<&str>,
) -> Result<Option<String>> {
    let (Some(meta), true) = (read_meta(dest), dest.exists()) else {
        return Ok(None);
    };
    let Some(recorded) = meta.sha256.clone() else {
        return Ok(None);
    };
    let why = if expected == Some(recorded.as_str()) {
        "recorded sha256 matches the expected one".to_string()
    } else if expected.is_none() {
        let Some(etag) = &meta.etag else {
            return Ok(None);
        };
        let url = urls.iter().find(|u| **u == meta.url).or(urls.first());
        let Some(url) = url else { return Ok(None) };
        match client.head(url).header(IF_NONE_MATCH, etag).send() {
            Ok(r) if r.status() == StatusCode::NOT_MODIFIED => format!("ETag {etag} not modified"),
            Ok(r) if r.headers().get(ETAG).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) => {
                format!("ETag {etag} unchanged")
            }
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    notify::status("verifying the local image");
    let local = hash_file(dest)?;
    if local != recorded {
        warn!(
            "local image {} is damaged (sha256 {local}, recorded {recorded}); fetching again",
            dest.display()
        );
        return Ok(None);
    }
    Ok(Some(why))
}

fn hash_file(p: &Path) -> Result<String> {
    Ok(hex(&hasher_of(p)?.finalize()))
}

/// A SHA-256 state fed with a file's bytes (to finish, or to continue with
/// the rest of a resumed download).
fn hasher_of(p: &Path) -> Result<Sha256> {
    let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", p.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Result of one transfer: the part file is complete; this is its metadata.
struct Fetched {
    meta: Meta,
    sha256: String,
}

fn download(client: &Client, url: &str, dest: &Path) -> Result<Fetched> {
    let part = part_path(dest);
    let part_meta: Option<Meta> = read_meta(&part);
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut req = client.get(url);
    let resuming = have > 0
        && part_meta
            .as_ref()
            .is_some_and(|m| m.etag.is_some() || m.last_modified.is_some());
    if resuming {
        let m = part_meta.as_ref().context("part metadata")?;
        let validator = m
            .etag
            .clone()
            .or(m.last_modified.clone())
            .unwrap_or_default();
        req = req
            .header(RANGE, format!("bytes={have}-"))
            .header(IF_RANGE, validator);
    }
    notify::status(&format!("connecting to {}", shown(url)));
    let resp = req.send().with_context(|| format!("GET {}", shown(url)))?;
    let status = resp.status();
    if http::RETRY_STATUS.contains(&status.as_u16()) {
        bail!("GET {}: {status} (will retry)", shown(url));
    }
    let (mut file, hasher, offset) = match status {
        StatusCode::PARTIAL_CONTENT if resuming => {
            info!("resuming {} at byte {have}", shown(url));
            let h = hasher_of(&part)?;
            let f = OpenOptions::new()
                .append(true)
                .open(&part)
                .with_context(|| format!("opening {}", part.display()))?;
            (f, h, have)
        }
        StatusCode::OK => {
            if resuming {
                info!("{} changed on the server: starting over", shown(url));
            }
            let f = File::create(&part).with_context(|| format!("creating {}", part.display()))?;
            (f, Sha256::new(), 0)
        }
        s => bail!("GET {}: unexpected status {s}", shown(url)),
    };
    let meta = Meta {
        url: url.to_string(),
        etag: header(&resp, ETAG),
        last_modified: header(&resp, LAST_MODIFIED),
        sha256: None,
        size: 0,
    };
    write_meta(&part, &meta)?;
    let total = resp.content_length().map(|l| l + offset);
    let (got, hasher) = stream(resp, &mut file, hasher, offset, total, url)?;
    file.sync_all()
        .with_context(|| format!("fsync {}", part.display()))?;
    if let Some(t) = total {
        if got != t {
            bail!("{}: transfer ended at byte {got} of {t}", shown(url));
        }
    }
    Ok(Fetched {
        meta: Meta { size: got, ..meta },
        sha256: hex(&hasher.finalize()),
    })
}

fn header(r: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Copies the body to the file while hashing, with progress in `STATUS=`;
/// returns the file's length and the hasher fed with all of it.
fn stream(
    mut src: impl Read,
    out: &mut File,
    hasher: Sha256,
    offset: u64,
    total: Option<u64>,
    url: &str,
) -> Result<(u64, Sha256)> {
    let start = Instant::now();
    let mut last = Instant::now();
    let progress = |done: u64| {
        if last.elapsed() < Duration::from_secs(1) {
            return;
        }
        last = Instant::now();
        let rate = (done - offset) as f64 / start.elapsed().as_secs_f64().max(0.001);
        let pct = total
            .map(|t| format!("{}% ", done * 100 / t.max(1)))
            .unwrap_or_default();
        notify::status(&format!(
            "downloading {}: {pct}({} of {} MiB) at {:.1} MiB/s",
            shown(url),
            done >> 20,
            total
                .map(|t| (t >> 20).to_string())
                .unwrap_or_else(|| "?".into()),
            rate / 1048576.0
        ));
    };
    hashed_copy::copy(&mut src, out, hasher, offset, progress)
        .with_context(|| format!("reading from {}", shown(url)))
}

/// `file://<dir>?LABEL=<label>`: mount the labelled device read-only, copy.
/// `src` is the source as shown in logs and in the image's record.
/// Runs `f` on the labelled filesystem, mounted read-only (or where it is
/// already mounted).
pub(crate) fn on_label<T>(label: &str, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let dev = crate::sys::udev::by_label(label);
    mounts::wait_for(&dev, 90)?;
    let mnt = PathBuf::from(format!("/run/metalroot/source-{label}"));
    let mounted_here = !mounts::is_mountpoint(&mnt);
    if mounted_here {
        mounts::mount_dev(&dev, &mnt, true)?;
    }
    let r = f(&mnt);
    if mounted_here {
        let _ = nix::mount::umount(&mnt);
    }
    r
}

fn copy_from_label(dir: &str, label: &str, src: &str, image: &str, dest: &Path) -> Result<Fetched> {
    on_label(label, |mnt| {
        let file = mnt.join(dir).join(image);
        let f = File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let part = part_path(dest);
        let mut out =
            File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        let total = f.metadata().map(|m| m.len()).ok();
        let (got, h) = stream(f, &mut out, Sha256::new(), 0, total, src)?;
        out.sync_all().context("fsync")?;
        Ok(Fetched {
            meta: Meta {
                url: src.to_string(),
                size: got,
                ..Meta::default()
            },
            sha256: hex(&h.finalize()),
        })
    })
}

/// Verifies the part file and only then gives it the image's name.
fn finish(dest: &Path, f: Fetched, expected: Option<&str>) -> Result<()> {
    let part = part_path(dest);
    if let Some(want) = expected {
        if f.sha256 != want {
            let _ = fs::remove_file(&part);
            let _ = fs::remove_file(meta_path(&part));
            bail!(
                "sha256 mismatch for {}: expected {want}, got {}; the image was discarded",
                shown(&f.meta.url),
                f.sha256
            );
        }
        info!("sha256 verified: {}", f.sha256);
    }
    fs::rename(&part, dest)
        .with_context(|| format!("renaming {} to {}", part.display(), dest.display()))?;
    if let Some(dir) = dest.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let _ = fs::remove_file(meta_path(&part));
    write_meta(
        dest,
        &Meta {
            sha256: Some(f.sha256.clone()),
            ..f.meta.clone()
        },
    )?;
    info!(
        "fetched {} ({} bytes) to {}",
        shown(&f.meta.url),
        f.meta.size,
        dest.display()
    );
    notify::status(&format!(
        "fetched {} bytes, sha256 {}",
        f.meta.size, f.sha256
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// metal.server's order holds when a password URL (a file) comes first.
    #[test]
    fn sources_keep_the_command_line_order() {
        use crate::cli::{Cli, Cmd};
        let argv = [
            "metalroot",
            "fetch",
            "--source-file",
            "/run/s1.url",
            "--source",
            "http://b/",
            "--image",
            "squashfs.img",
            "--dest-file",
            "/run/img",
        ];
        let Ok(Cli {
            cmd: Cmd::Fetch(a), ..
        }) = Cli::try_parse_ordered(argv)
        else {
            panic!("fetch argv does not parse");
        };
        let shown: Vec<String> = a
            .src
            .given()
            .iter()
            .map(|g| match g {
                Given::Source(u) => u.to_string(),
                Given::File(f) => f.display().to_string(),
            })
            .collect();
        assert_eq!(shown, ["/run/s1.url", "http://b/"]);
        assert_eq!(a.to_argv()[..4], argv[2..6]);
    }

    #[test]
    fn urls() {
        for (server, image, exact, want) in [
            (
                "http://pit/",
                "squashfs.img",
                false,
                "http://pit/squashfs.img",
            ),
            (
                "http://pit/x/squashfs.img",
                "squashfs.img",
                false,
                "http://pit/x/squashfs.img",
            ),
            (
                "https://s3/b?X-Amz-Signature=a%2Fb",
                "i.img",
                false,
                "https://s3/b/i.img?X-Amz-Signature=a%2Fb",
            ),
            ("http://h/a.img", "squashfs.img", true, "http://h/a.img"),
        ] {
            assert_eq!(image_url(server, image, exact), want, "{server}");
        }
    }
}
