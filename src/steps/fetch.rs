//! `metalroot fetch`: puts the squashfs image at `<dir>/<image>` on the image
//! array (or in RAM), verified with SHA-256 computed while the bytes stream
//! to disk, resumable with Range/If-Range, failing over between servers, and
//! skipped on a reboot when the local copy still matches.

use crate::args::Argv;
use crate::kinds::{
    ImageSource, Verify, DEFAULT_FETCH_TIMEOUT, DEFAULT_LIVE_DIR, DEFAULT_SQUASHIMG, IMAGE_RECORD,
    KEYS_DIR,
};
use crate::sys::hashed_copy::Hashes;
use crate::sys::http::HttpOpts;
use crate::sys::image_record::ImageRecord;
use crate::sys::retry::backoff;
use crate::sys::swarm::{self, TorrentOpts};
use crate::sys::trust::{self, Signed, TrustedKey, Verdict};
use crate::sys::{hashed_copy, http, mounts, notify};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use reqwest::blocking::{Client, Response};
use reqwest::header::{ETAG, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;
use serde::Serialize;
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
    /// What the image is checked against (metal.verify). Unset: signature
    /// when a trusted key is installed or named, else sha256.
    #[arg(long, value_enum)]
    pub verify: Option<Verify>,
    /// A systemd credential holding a trusted minisign public key
    /// (metal.verify-key).
    #[arg(long)]
    pub verify_key: Option<String>,
    /// Directory of trusted minisign public keys (*.pub).
    #[arg(long, default_value = KEYS_DIR)]
    pub keys_dir: PathBuf,
    /// Where this boot's image record is written.
    #[arg(long, default_value = IMAGE_RECORD)]
    pub record: PathBuf,
    /// Start at the mirror a stable hash of the node's identity picks, then
    /// the others in order (metal.server-spread).
    #[arg(long)]
    pub spread: bool,
    /// metal.torrent: peers share the image; the mirrors fill the rest.
    #[command(flatten)]
    pub torrent: TorrentOpts,
}

impl Default for FetchOpts {
    fn default() -> Self {
        FetchOpts {
            sha256: None,
            http: HttpOpts::default(),
            timeout: DEFAULT_FETCH_TIMEOUT,
            verify: None,
            verify_key: None,
            keys_dir: PathBuf::from(KEYS_DIR),
            record: PathBuf::from(IMAGE_RECORD),
            spread: false,
            torrent: TorrentOpts::default(),
        }
    }
}

impl FetchOpts {
    pub(crate) fn push(&self, a: &mut Argv) {
        a.opt_if("sha256", self.sha256.as_ref());
        self.http.push(a);
        a.opt("timeout", self.timeout);
        a.opt_if("verify", self.verify);
        a.opt_if("verify-key", self.verify_key.as_ref());
        if self.keys_dir != Path::new(KEYS_DIR) {
            a.path("keys-dir", Some(&self.keys_dir));
        }
        if self.record != Path::new(IMAGE_RECORD) {
            a.path("record", Some(&self.record));
        }
        a.flag("spread", self.spread);
        self.torrent.push(a);
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

/// What we remember next to the image: where it came from, its hash and,
/// when signed, who signed it.
#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Meta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    sha256: Option<String>,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<Verdict>,
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

/// `<url>` with `suffix` added to its path (query kept): the sidecar and the
/// signature next to the image.
fn beside(url: &str, suffix: &str) -> Option<String> {
    let mut u = Url::parse(url).ok()?;
    u.set_path(&format!("{}{suffix}", u.path()));
    Some(u.into())
}

/// The URL with any password hidden, for logs.
fn shown(url: &str) -> String {
    crate::redact::redact_url(url)
}

/// An image (or a source) that was refused: a bad checksum or signature, or
/// no signature. Not retried on the same server; the next one is tried.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(msg: String) -> anyhow::Error {
    anyhow::Error::new(Refused(msg))
}

/// What an image must pass before it gets its name.
struct Checks<'k> {
    mode: Verify,
    keys: &'k [TrustedKey],
    sha256: Option<String>,
}

impl<'k> Checks<'k> {
    /// The signature for one source, when signatures are checked.
    fn signature(
        &self,
        url: &str,
        text: impl FnOnce() -> Result<Option<String>>,
    ) -> Result<Option<Signed<'k>>> {
        if self.mode != Verify::Signature {
            return Ok(None);
        }
        trusted_signature(self.keys, url, text).map(Some)
    }
}

/// The signature of the image at `url` (its text from `text`), parsed and
/// matched to a trusted key before any byte of the image is fetched: the
/// fetch's check, and the wipe's preflight's, which makes sure before
/// anything is wiped that the image will not be refused for it.
pub(crate) fn trusted_signature<'k>(
    keys: &'k [TrustedKey],
    url: &str,
    text: impl FnOnce() -> Result<Option<String>>,
) -> Result<Signed<'k>> {
    let Some(text) = text()? else {
        return Err(refused(format!(
            "no signature at {}.minisig: refused (metal.verify=signature)",
            shown(url)
        )));
    };
    Signed::parse(&text, keys)
        .map_err(|e| refused(format!("signature check failed for {}: {e:#}", shown(url))))
}

/// What the image is checked against, and the trusted keys: the fetch's
/// and the wipe's preflight's.
pub(crate) fn trust_mode(o: &FetchOpts) -> Result<(Verify, Vec<TrustedKey>)> {
    let keys = trust::load_keys(&o.keys_dir, o.verify_key.as_deref())?;
    let mode = match o.verify {
        Some(m) => m,
        None if !keys.is_empty() => Verify::Signature,
        None => Verify::Sha256,
    };
    if mode == Verify::Signature && keys.is_empty() {
        bail!(
            "metal.verify=signature, but no trusted key: none in {} and no metal.verify-key credential",
            o.keys_dir.display()
        );
    }
    Ok((mode, keys))
}

/// The `.minisig` next to the image in `<mnt>/<dir>` on a labelled source:
/// None when there is none.
pub(crate) fn label_signature(mnt: &Path, dir: &str, image: &str) -> Result<Option<String>> {
    let p = mnt.join(dir).join(format!("{image}.minisig"));
    match fs::read_to_string(&p) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// The `.minisig` next to an http(s) image: None when the server has none
/// (404), an error when it cannot be asked (retried like the image).
pub(crate) fn http_signature(client: &Client, url: &str) -> Result<Option<String>> {
    let sig = beside(url, ".minisig").with_context(|| format!("{} is not a URL", shown(url)))?;
    let r = client
        .get(&sig)
        .send()
        .with_context(|| format!("GET {}", shown(&sig)))?;
    match r.status() {
        s if s.is_success() => Ok(Some(
            r.text()
                .with_context(|| format!("reading {}", shown(&sig)))?,
        )),
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
        s => bail!("GET {}: {s}", shown(&sig)),
    }
}

pub fn run(a: FetchArgs) -> Result<()> {
    // A record left by an earlier run must not outlive a failed one: the
    // measure step and the real root read it as this boot's image.
    match fs::remove_file(&a.opts.record) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", a.opts.record.display()))
        }
        _ => {}
    }
    let mut sources = a.src.resolve()?;
    let (mode, keys) = trust_mode(&a.opts)?;
    match mode {
        Verify::Signature => info!("verify: signature (trusted keys: {})", trust::ids(&keys)),
        Verify::Sha256 if !keys.is_empty() => warn!(
            "verify: sha256 (metal.verify=sha256): the signature is not checked although a key is trusted ({})",
            trust::ids(&keys)
        ),
        Verify::Sha256 => info!("verify: sha256"),
        Verify::None => warn!("verify: none (metal.verify=none): the image is not verified at all"),
    }
    let dest = destination(&a)?;
    let client = http::client(&a.opts.http)?;
    let deadline = Instant::now() + Duration::from_secs(a.opts.timeout);
    let mut urls = a.src.urls(&sources);
    if a.opts.spread && sources.len() > 1 {
        spread(&mut sources, &mut urls);
    }

    let expected = match (&a.opts.sha256, mode) {
        (_, Verify::None) => None,
        (Some(h), _) => Some(h.to_lowercase()),
        // A sidecar from the image's own server proves nothing a signature
        // does not: not asked for.
        (None, Verify::Signature) => None,
        (None, Verify::Sha256) => sidecar(&client, &urls),
    };
    match &expected {
        Some(h) => info!("expected sha256 {h}"),
        None if mode == Verify::Sha256 => {
            warn!("no metal.sha256 and no <image>.sha256 on the server: the image is not verified")
        }
        None => {}
    }
    let checks = Checks {
        mode,
        keys: &keys,
        sha256: expected,
    };
    // Every way to the image ends here: its record, then (metal.torrent)
    // the booted system's seeder.
    let complete = |meta: &Meta, fetched: bool, from: Option<swarm::Sources>| -> Result<()> {
        record(&a.opts.record, &dest, meta, mode, fetched, from)?;
        swarm::write_seed_unit(&a.opts.torrent, &dest)
    };

    if let Some((done, meta)) = unchanged(&client, &dest, &sources, &urls, &checks)? {
        info!(
            "{} is unchanged on the server ({}); nothing downloaded",
            dest.display(),
            done
        );
        // The seeder uses the metainfo an earlier boot kept beside the
        // image, if any.
        return complete(&meta, false, None);
    }

    if a.opts.torrent.torrent.is_some() {
        match by_torrent(&client, &a.opts.torrent, &dest, &sources, &urls, &checks) {
            Ok((meta, from)) => return complete(&meta, true, Some(from)),
            Err(e) => warn!("torrent: {e:#}; fetching the image from the mirrors instead"),
        }
    }

    let mut last_err = anyhow!("no source tried");
    // Servers whose image (or signature) was refused: not asked again.
    let mut refused_at = vec![false; urls.len()];
    let mut attempt: u32 = 0;
    'outer: while Instant::now() < deadline {
        for (i, (src, url)) in sources.iter().zip(&urls).enumerate() {
            if refused_at[i] {
                continue;
            }
            if Instant::now() >= deadline {
                break 'outer;
            }
            attempt += 1;
            let r = match src {
                ImageSource::Labelled { dir, label } => {
                    copy_from_label(dir, label, url, &a.src.image, &dest, &checks)
                }
                ImageSource::Url(_) => checks
                    .signature(url, || http_signature(&client, url))
                    .and_then(|signed| download(&client, url, &dest, signed.as_ref())),
            };
            match r.and_then(|m| finish(&dest, m, &checks)) {
                // The metainfo may have come although the swarm did not:
                // the node can still seed what it booted.
                Ok(meta) => return complete(&meta, true, None),
                Err(e) => {
                    warn!("fetch from {} failed: {e:#}", shown(url));
                    let refusal = e.downcast_ref::<Refused>().is_some();
                    last_err = e;
                    if refusal {
                        refused_at[i] = true;
                        if refused_at.iter().all(|r| *r) {
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

/// metal.server-spread: the node starts at the mirror its identity picks,
/// so a fleet spreads over the mirrors, and fails over to the others in
/// their order.
fn spread(sources: &mut [ImageSource], urls: &mut [String]) {
    let Some((id, what)) = crate::sys::identity::node(Path::new("/")) else {
        warn!("metal.server-spread: no DMI UUID, serial, machine id or MAC to go by; the mirrors are tried in order");
        return;
    };
    let k = crate::sys::identity::start(&id, sources.len());
    sources.rotate_left(k);
    urls.rotate_left(k);
    info!(
        "mirrors: starting at {} ({} of {}, picked by this node's {what} {id}), then the others in order",
        shown(&urls[0]),
        k + 1,
        urls.len()
    );
}

/// This boot's record of the image, for the measure step and the real root;
/// `from`: how much came from the swarm (metal.torrent).
fn record(
    path: &Path,
    dest: &Path,
    m: &Meta,
    mode: Verify,
    fetched: bool,
    from: Option<swarm::Sources>,
) -> Result<()> {
    ImageRecord {
        url: shown(&m.url),
        path: dest.display().to_string(),
        sha256: m.sha256.clone().unwrap_or_default(),
        size: m.size,
        verify: mode.to_string(),
        signature: m.signature.clone(),
        fetched,
        measured: None,
        torrent: from,
    }
    .write(path)
}

/// metal.torrent: the image from the swarm, what it lacks from the HTTP
/// mirrors by range request, then the same checks as an HTTP fetch. Any
/// failure (no helper, no metainfo, a dead swarm, a refused image) leaves
/// the ordinary fetch from the mirrors to the caller.
fn by_torrent(
    client: &Client,
    o: &TorrentOpts,
    dest: &Path,
    sources: &[ImageSource],
    urls: &[String],
    checks: &Checks,
) -> Result<(Meta, swarm::Sources)> {
    let mirrors: Vec<String> = sources
        .iter()
        .zip(urls)
        .filter(|(s, _)| matches!(s, ImageSource::Url(_)))
        .map(|(_, u)| u.clone())
        .collect();
    // The signature comes from the mirrors, before the swarm is joined.
    let signed = first_signature(client, checks, sources, urls)?.map(|(_, s)| s);
    let part = part_path(dest);
    let _ = fs::remove_file(meta_path(&part));
    let from = swarm::fetch(client, o, &mirrors, dest, &part)?;
    let mut h = hashes(signed.as_ref())?;
    h.feed_file(&part)?;
    let meta = Meta {
        url: format!("torrent {}", o.torrent.as_deref().unwrap_or_default()),
        size: fs::metadata(&part)
            .with_context(|| format!("reading {}", part.display()))?
            .len(),
        ..Meta::default()
    };
    let meta = finish(dest, fetched(meta, h, signed.as_ref()), checks)?;
    Ok((meta, from))
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
        let Some(side) = beside(url, ".sha256") else {
            continue;
        };
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
/// expected one, or the server answers 304 to its ETag, or, when signatures
/// are checked, when a server's current signature verifies it (a new image
/// on the server has a new signature, which the old bytes fail). Either way
/// the local bytes are hashed again before they are trusted.
fn unchanged(
    client: &Client,
    dest: &Path,
    sources: &[ImageSource],
    urls: &[String],
    checks: &Checks,
) -> Result<Option<(String, Meta)>> {
    let (Some(meta), true) = (read_meta(dest), dest.exists()) else {
        return Ok(None);
    };
    let Some(recorded) = meta.sha256.clone() else {
        return Ok(None);
    };
    if checks.mode == Verify::Signature {
        return unchanged_signed(client, dest, sources, urls, checks, meta);
    }
    let expected = checks.sha256.as_deref();
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
    let mut h = Hashes::new(None);
    h.feed_file(dest)?;
    let (local, _) = h.sha256_hex();
    if local != recorded {
        warn!(
            "local image {} is damaged (sha256 {local}, recorded {recorded}); fetching again",
            dest.display()
        );
        return Ok(None);
    }
    Ok(Some((why, meta)))
}

/// When signatures are checked: the first http(s) source whose signature
/// parses and names a trusted key, with its URL (labelled sources are not
/// asked); the last refusal when none does. None when they are not checked.
fn first_signature<'u, 'k>(
    client: &Client,
    checks: &Checks<'k>,
    sources: &[ImageSource],
    urls: &'u [String],
) -> Result<Option<(&'u str, Signed<'k>)>> {
    if checks.mode != Verify::Signature {
        return Ok(None);
    }
    let mut last = anyhow!("no http(s) mirror for the image's signature");
    for (src, url) in sources.iter().zip(urls) {
        if !matches!(src, ImageSource::Url(_)) {
            continue;
        }
        match checks.signature(url, || http_signature(client, url)) {
            Ok(Some(signed)) => return Ok(Some((url, signed))),
            Ok(None) => return Ok(None),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The unchanged check of a signed image: the first server that has a
/// signature decides; the local bytes must verify against it.
fn unchanged_signed(
    client: &Client,
    dest: &Path,
    sources: &[ImageSource],
    urls: &[String],
    checks: &Checks,
    meta: Meta,
) -> Result<Option<(String, Meta)>> {
    // A stick or disk (labelled source) is not asked: copying it again
    // costs little.
    let (url, signed) = match first_signature(client, checks, sources, urls) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::debug!("no usable signature for the unchanged check: {e:#}");
            return Ok(None);
        }
    };
    notify::status("verifying the local image's signature");
    let mut h = Hashes::new(Some(signed.verifier()?));
    h.feed_file(dest)?;
    let (local, v) = h.sha256_hex();
    let verdict = match v.map(|v| signed.check(v)) {
        Some(Ok(verdict)) => verdict,
        _ => {
            info!(
                "the local image {} is not the one signed at {}: fetching",
                dest.display(),
                shown(url)
            );
            return Ok(None);
        }
    };
    if checks.sha256.as_ref().is_some_and(|want| *want != local) {
        return Ok(None);
    }
    info!("signature verified: {verdict}");
    let why = format!(
        "the signature by key {} verifies the local image",
        verdict.key_id
    );
    let meta = Meta {
        sha256: Some(local),
        signature: Some(verdict),
        ..meta
    };
    write_meta(dest, &meta)?;
    Ok(Some((why, meta)))
}

/// Result of one transfer: the part file is complete; this is its metadata,
/// its SHA-256 and, for a signed image, the signature's check.
struct Fetched {
    meta: Meta,
    sha256: String,
    signature: Option<Result<Verdict>>,
}

fn hashes<'k>(signed: Option<&'k Signed<'k>>) -> Result<Hashes<'k>> {
    Ok(Hashes::new(signed.map(Signed::verifier).transpose()?))
}

/// The hashes' results once every byte went through them.
fn fetched(meta: Meta, h: Hashes, signed: Option<&Signed>) -> Fetched {
    let (sha256, v) = h.sha256_hex();
    let signature = match (signed, v) {
        (Some(s), Some(v)) => Some(s.check(v)),
        _ => None,
    };
    Fetched {
        meta,
        sha256,
        signature,
    }
}

fn download(client: &Client, url: &str, dest: &Path, signed: Option<&Signed>) -> Result<Fetched> {
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
    let (mut file, hashes, offset) = match status {
        StatusCode::PARTIAL_CONTENT if resuming => {
            info!("resuming {} at byte {have}", shown(url));
            let mut h = hashes(signed)?;
            h.feed_file(&part)?;
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
            (f, hashes(signed)?, 0)
        }
        s => bail!("GET {}: unexpected status {s}", shown(url)),
    };
    let meta = Meta {
        url: url.to_string(),
        etag: header(&resp, ETAG),
        last_modified: header(&resp, LAST_MODIFIED),
        ..Meta::default()
    };
    write_meta(&part, &meta)?;
    let total = resp.content_length().map(|l| l + offset);
    let (got, hashes) = stream(resp, &mut file, hashes, offset, total, url)?;
    file.sync_all()
        .with_context(|| format!("fsync {}", part.display()))?;
    if let Some(t) = total {
        if got != t {
            bail!("{}: transfer ended at byte {got} of {t}", shown(url));
        }
    }
    Ok(fetched(Meta { size: got, ..meta }, hashes, signed))
}

fn header(r: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Copies the body to the file while hashing, with progress in `STATUS=`;
/// returns the file's length and the hashes fed with all of it.
fn stream<'k>(
    mut src: impl Read,
    out: &mut File,
    hashes: Hashes<'k>,
    offset: u64,
    total: Option<u64>,
    url: &str,
) -> Result<(u64, Hashes<'k>)> {
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
    hashed_copy::copy(&mut src, out, hashes, offset, progress)
        .with_context(|| format!("reading from {}", shown(url)))
}

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

/// `file://<dir>?LABEL=<label>`: mount the labelled device read-only, copy
/// the image (and read its `.minisig` there when signatures are checked).
/// `src` is the source as shown in logs and in the image's record.
fn copy_from_label(
    dir: &str,
    label: &str,
    src: &str,
    image: &str,
    dest: &Path,
    checks: &Checks,
) -> Result<Fetched> {
    on_label(label, |mnt| {
        let file = mnt.join(dir).join(image);
        let signed = checks.signature(src, || label_signature(mnt, dir, image))?;
        let f = File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let part = part_path(dest);
        let mut out =
            File::create(&part).with_context(|| format!("creating {}", part.display()))?;
        let total = f.metadata().map(|m| m.len()).ok();
        let (got, h) = stream(f, &mut out, hashes(signed.as_ref())?, 0, total, src)?;
        out.sync_all().context("fsync")?;
        let meta = Meta {
            url: src.to_string(),
            size: got,
            ..Meta::default()
        };
        Ok(fetched(meta, h, signed.as_ref()))
    })
}

/// Verifies the part file and only then gives it the image's name; a
/// refused image is removed.
fn finish(dest: &Path, f: Fetched, checks: &Checks) -> Result<Meta> {
    let part = part_path(dest);
    let discard = || {
        let _ = fs::remove_file(&part);
        let _ = fs::remove_file(meta_path(&part));
    };
    if let Some(want) = &checks.sha256 {
        if f.sha256 != *want {
            discard();
            return Err(refused(format!(
                "sha256 mismatch for {}: expected {want}, got {}; the image was discarded",
                shown(&f.meta.url),
                f.sha256
            )));
        }
        info!("sha256 verified: {}", f.sha256);
    }
    let signature = match f.signature {
        Some(Ok(v)) => {
            info!("signature verified: {v}");
            Some(v)
        }
        Some(Err(e)) => {
            discard();
            return Err(refused(format!(
                "signature check failed for {}: {e:#}; the image was discarded",
                shown(&f.meta.url)
            )));
        }
        None if checks.mode == Verify::Signature => {
            discard();
            bail!("internal error: the signature was not checked");
        }
        None => None,
    };
    fs::rename(&part, dest)
        .with_context(|| format!("renaming {} to {}", part.display(), dest.display()))?;
    if let Some(dir) = dest.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let _ = fs::remove_file(meta_path(&part));
    let meta = Meta {
        sha256: Some(f.sha256.clone()),
        signature,
        ..f.meta
    };
    write_meta(dest, &meta)?;
    info!(
        "fetched {} ({} bytes) to {}",
        shown(&meta.url),
        meta.size,
        dest.display()
    );
    notify::status(&format!("fetched {} bytes, sha256 {}", meta.size, f.sha256));
    Ok(meta)
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
