//! `metalroot-torrent`: the swarm part of `metal.torrent=`, on librqbit.
//!
//! `fetch` downloads a single-file torrent into a directory from the peers
//! it is given (and the site's tracker, if the .torrent names one) until it
//! is complete or makes no progress for `--stall` seconds, then writes a
//! JSON state file naming the byte ranges it does not have. metalroot's
//! fetch step fills those from the HTTP mirrors and verifies the whole image
//! with its own SHA-256 / signature: BitTorrent v1's SHA-1 piece hashes only
//! tell which pieces arrived intact.
//!
//! `seed` offers a complete file to the fleet for a bounded time (the real
//! root's metalroot-seed.service).
//!
//! Both: no DHT, no local service discovery, no UPnP; peers (incoming and
//! outgoing) only from the `--allow` CIDR list; upload rate-limited.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use librqbit::api::{Api, TorrentIdOrHash};
use librqbit::limits::LimitsConfig;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListenerOptions, ManagedTorrent, Session,
    SessionOptions,
};
use state::State;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod net;
mod state;
use net::{allowed, p2p_ranges, url_host};

type ManagedTorrentHandle = Arc<ManagedTorrent>;

#[derive(Parser)]
#[command(name = "metalroot-torrent", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download a torrent's one file from the swarm (metalroot fetch runs it).
    Fetch(FetchArgs),
    /// Offer a complete file to the swarm for a bounded time.
    Seed(SeedArgs),
}

/// What both subcommands share: the torrent, the peers and the limits.
#[derive(Args)]
struct Swarm {
    /// The .torrent (metainfo) file.
    #[arg(long)]
    torrent: PathBuf,
    /// A peer to connect to (ip:port); repeatable (metal.torrent-peers).
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// Peers are only these networks, both ways (metal.torrent-allow);
    /// repeatable. Nothing is allowed without one.
    #[arg(long = "allow", required = true)]
    allow: Vec<IpNet>,
    /// Address and port to accept peers on (metal.torrent-port).
    #[arg(long, default_value = "0.0.0.0:6881")]
    listen: SocketAddr,
    /// Upload limit in bytes per second (metal.torrent-upload); 0: none.
    #[arg(long, default_value_t = 25 << 20)]
    upload_limit: u32,
    /// The torrent's info hash (hex) when it came from a magnet link: the
    /// metainfo must match it.
    #[arg(long)]
    info_hash: Option<String>,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    swarm: Swarm,
    /// Directory the file is written to (under its name in the torrent).
    #[arg(long)]
    dir: PathBuf,
    /// Stop when no byte arrived for this many seconds (metal.torrent-timeout).
    #[arg(long, default_value_t = 20)]
    stall: u64,
    /// Where the outcome is written (JSON: the file, what is missing).
    #[arg(long)]
    state: PathBuf,
}

#[derive(Args)]
struct SeedArgs {
    #[command(flatten)]
    swarm: Swarm,
    /// The complete file (any name; it is offered under the torrent's).
    #[arg(long)]
    file: PathBuf,
    /// Seed for this many seconds, then exit (metal.torrent-seed).
    #[arg(long = "for", default_value_t = 600)]
    seconds: u64,
}

fn main() {
    let cli = Cli::parse();
    if let Ok(f) = std::env::var("METALROOT_TORRENT_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("torrent: error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    let r = rt.block_on(async {
        match cli.cmd {
            Cmd::Fetch(a) => fetch(a).await,
            Cmd::Seed(a) => seed(a).await,
        }
    });
    if let Err(e) = r {
        eprintln!("torrent: error: {e:#}");
        std::process::exit(1);
    }
}

/// A session with nothing public: no DHT, no LSD, no UPnP; the allowlist
/// filters incoming and outgoing peers before the handshake.
async fn session(s: &Swarm, dir: &Path) -> Result<Arc<Session>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let list = dir.join(".allow.p2p");
    std::fs::write(&list, p2p_ranges(&s.allow))
        .with_context(|| format!("writing {}", list.display()))?;
    let opts = SessionOptions {
        dht: None,
        disable_local_service_discovery: true,
        listen: Some(ListenerOptions {
            listen_addr: s.listen,
            enable_upnp_port_forwarding: false,
            ..Default::default()
        }),
        ratelimits: limits(s.upload_limit),
        allowlist_url: Some(format!("file://{}", list.display())),
        ..Default::default()
    };
    Session::new_with_opts(dir.to_path_buf(), opts)
        .await
        .context("starting the BitTorrent session")
}

fn limits(upload: u32) -> LimitsConfig {
    LimitsConfig {
        upload_bps: NonZeroU32::new(upload),
        download_bps: None,
    }
}

/// The given peers that are in the allowed networks.
fn peers(s: &Swarm) -> Vec<SocketAddr> {
    s.peers
        .iter()
        .filter(|p| allowed(&s.allow, p.ip()))
        .copied()
        .collect()
}

fn note_refused_peers(s: &Swarm) {
    for p in s.peers.iter().filter(|p| !allowed(&s.allow, p.ip())) {
        eprintln!("torrent: peer {p} is outside the allowed networks; not used");
    }
}

fn read_torrent(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// The .torrent's trackers may be used only when each resolves inside the
/// allowed networks: a torrent made with a public tracker in it must not
/// announce the fleet there.
async fn trackers_allowed(bytes: &[u8], allow: &[IpNet]) -> Result<bool> {
    let t = librqbit::torrent_from_bytes(bytes).context("reading the .torrent")?;
    for raw in t.iter_announce() {
        let url = String::from_utf8_lossy(raw.as_ref()).into_owned();
        let Some(host) = url_host(&url) else {
            eprintln!("torrent: tracker {url:?} is not a URL; trackers not used");
            return Ok(false);
        };
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, 0)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                eprintln!("torrent: tracker {url}: {e}; trackers not used");
                return Ok(false);
            }
        };
        if addrs.is_empty() || !addrs.iter().all(|a| allowed(allow, a.ip())) {
            eprintln!(
                "torrent: tracker {url} is outside the allowed networks (metal.torrent-allow); trackers not used"
            );
            return Ok(false);
        }
    }
    Ok(true)
}

async fn add(
    session: &Arc<Session>,
    s: &Swarm,
    bytes: Vec<u8>,
    dir: &Path,
) -> Result<(usize, ManagedTorrentHandle)> {
    note_refused_peers(s);
    let disable_trackers = !trackers_allowed(&bytes, &s.allow).await?;
    let opts = AddTorrentOptions {
        disable_trackers,
        initial_peers: Some(peers(s)),
        overwrite: true,
        output_folder: Some(dir.display().to_string()),
        ratelimits: limits(s.upload_limit),
        // Nodes that start together have nothing for each other at first:
        // librqbit's 10 s read timeout (with keep-alives every 120 s) would
        // drop those links and redial them only after 10 s, then 60 s.
        peer_opts: Some(librqbit::PeerConnectionOptions {
            connect_timeout: Some(Duration::from_secs(3)),
            read_write_timeout: Some(Duration::from_secs(30)),
            keep_alive_interval: Some(Duration::from_secs(5)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = session
        .add_torrent(AddTorrent::from_bytes(bytes), Some(opts))
        .await
        .context("adding the torrent")?;
    let (id, h) = match r {
        AddTorrentResponse::Added(id, h) | AddTorrentResponse::AlreadyManaged(id, h) => (id, h),
        AddTorrentResponse::ListOnly(_) => bail!("the torrent was only listed"),
    };
    if let Some(want) = &s.info_hash {
        let got = h.info_hash().as_string();
        if !got.eq_ignore_ascii_case(want) {
            bail!("the metainfo's info hash is {got}, the magnet link's {want}");
        }
    }
    let files = h.with_metadata(|m| m.file_infos.len())?;
    if files != 1 {
        bail!("the torrent holds {files} files; an image torrent holds one");
    }
    Ok((id, h))
}

fn file_of(h: &ManagedTorrentHandle, dir: &Path) -> Result<PathBuf> {
    let rel = h.with_metadata(|m| m.file_infos[0].relative_filename.clone())?;
    Ok(dir.join(rel))
}

/// Waits (at most `window`) until every given peer accepts connections.
/// Nodes of a fleet start together: a peer that is not listening yet when
/// librqbit first dials it is retried only after 10 s, then 60 s. Our own
/// listener is up before this, so a peer that starts later dials us.
async fn rendezvous(peers: &[SocketAddr], window: Duration) {
    let until = Instant::now() + window;
    let mut waiting: Vec<SocketAddr> = peers.to_vec();
    while !waiting.is_empty() && Instant::now() < until {
        let mut still = Vec::new();
        for p in waiting {
            let c = tokio::time::timeout(
                Duration::from_millis(300),
                tokio::net::TcpStream::connect(p),
            )
            .await;
            if !matches!(c, Ok(Ok(_))) {
                still.push(p);
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // The others add the torrent right after their own wait: a dial that
    // lands before that is refused (unknown info hash) and backs off 10 s.
    if waiting.len() < peers.len() {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if !waiting.is_empty() {
        let w: Vec<String> = waiting.iter().map(|p| p.to_string()).collect();
        eprintln!(
            "torrent: not answering yet: {} (they connect to us when they start)",
            w.join(" ")
        );
    }
}

/// librqbit asks for pieces in file order, so nodes that start together
/// all want the same piece from the seed at the same time and have nothing
/// to trade. A stream's look-ahead window (32 MiB) has priority, so each
/// node moves one over the file in a random order of windows: nodes hold
/// different pieces and fetch them from each other (what rarest-first does
/// in other clients).
struct Window<S> {
    stream: S,
    pos: u64,
    len: u64,
}

/// librqbit's look-ahead per stream (PER_STREAM_BUF_DEFAULT).
const WINDOW: u64 = 32 << 20;

fn random_below(n: u64) -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    let r = u64::from_le_bytes(b) ^ u64::from(std::process::id());
    if n > 0 {
        r % n
    } else {
        0
    }
}

impl<S: tokio::io::AsyncSeek + Unpin> Window<S> {
    async fn seek(&mut self) {
        use tokio::io::AsyncSeekExt;
        let _ = self.stream.seek(std::io::SeekFrom::Start(self.pos)).await;
    }

    fn windows(&self) -> u64 {
        self.len.div_ceil(WINDOW)
    }

    /// Whether every piece of window `w` is here.
    fn done(&self, w: u64, piece: u64, have: &impl Fn(u32) -> bool) -> bool {
        let start = w * WINDOW;
        let end = (start + WINDOW).min(self.len);
        (start / piece..end.div_ceil(piece)).all(|i| have(i as u32))
    }

    /// Once every piece of the window is here, a random unfinished one.
    async fn advance(&mut self, piece: u64, have: impl Fn(u32) -> bool) {
        if !self.done(self.pos / WINDOW, piece, &have) {
            return;
        }
        let open: Vec<u64> = (0..self.windows())
            .filter(|w| !self.done(*w, piece, &have))
            .collect();
        if open.is_empty() {
            return;
        }
        self.pos = open[random_below(open.len() as u64) as usize] * WINDOW;
        self.seek().await;
    }
}

async fn fetch(a: FetchArgs) -> Result<()> {
    let start = Instant::now();
    let session = session(&a.swarm, &a.dir).await?;
    rendezvous(&peers(&a.swarm), Duration::from_secs(a.stall.min(5))).await;
    let (id, h) = add(&session, &a.swarm, read_torrent(&a.swarm.torrent)?, &a.dir).await?;
    let file = file_of(&h, &a.dir)?;
    let api = Api::new(session.clone(), None);
    let lengths = h.with_metadata(|m| *m.info.lengths())?;
    let mut window = Window {
        stream: h
            .clone()
            .stream(0)
            .await
            .context("opening the file's stream")?,
        pos: random_below(lengths.total_length().div_ceil(WINDOW)) * WINDOW,
        len: lengths.total_length(),
    };
    window.seek().await;
    let piece = u64::from(lengths.default_piece_length());
    eprintln!(
        "torrent: fetching {} ({} peers given, listening on {}), from byte {} on",
        file.display(),
        a.swarm.peers.len(),
        a.swarm.listen,
        window.pos
    );
    let stall = Duration::from_secs(a.stall);
    let (mut last_bytes, mut last_change, mut last_log) = (0u64, Instant::now(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let st = h.stats();
        if let Some(e) = &st.error {
            eprintln!("torrent: the engine stopped: {e}");
            break;
        }
        if st.finished {
            break;
        }
        if let Ok((haves, _)) = api.api_dump_haves(TorrentIdOrHash::Id(id)) {
            window
                .advance(piece, |i| haves.get(i as usize).is_some_and(|b| *b))
                .await;
        }
        if st.progress_bytes != last_bytes {
            last_bytes = st.progress_bytes;
            last_change = Instant::now();
        } else if last_change.elapsed() >= stall {
            eprintln!(
                "torrent: no piece for {} s (metal.torrent-timeout); stopping at {} of {} bytes",
                a.stall, st.progress_bytes, st.total_bytes
            );
            break;
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            let peers = st.live.as_ref().map(|l| {
                let p = &l.snapshot.peer_stats;
                format!(
                    "peers: {} live ({} seeding), {} connecting, {} dead",
                    p.live, p.live_seeders, p.connecting, p.dead
                )
            });
            eprintln!("torrent: {st}; {}", peers.unwrap_or_default());
        }
    }
    let st = h.stats();
    let (haves, pieces) = api
        .api_dump_haves(TorrentIdOrHash::Id(id))
        .map_err(|e| anyhow::anyhow!("reading the pieces it has: {e}"))?;
    let mut missing: Vec<(u64, u64)> = Vec::new();
    for i in 0..pieces {
        if haves.get(i as usize).is_some_and(|b| *b) {
            continue;
        }
        let Some(p) = lengths.validate_piece_index(i) else {
            continue;
        };
        let (off, len) = (lengths.piece_offset(p), u64::from(lengths.piece_length(p)));
        match missing.last_mut() {
            Some(last) if last.0 + last.1 == off => last.1 += len,
            _ => missing.push((off, len)),
        }
    }
    session.stop().await;
    let state = State {
        file,
        length: lengths.total_length(),
        missing,
        downloaded: st.progress_bytes,
        uploaded: st.uploaded_bytes,
        seconds: start.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&state).context("encoding the state")?;
    std::fs::write(&a.state, json).with_context(|| format!("writing {}", a.state.display()))?;
    eprintln!(
        "torrent: {} of {} bytes from the swarm in {:.1} s, {} uploaded to peers",
        st.progress_bytes, state.length, state.seconds, st.uploaded_bytes
    );
    Ok(())
}

async fn seed(a: SeedArgs) -> Result<()> {
    let bytes = read_torrent(&a.swarm.torrent)?;
    // The file is offered under the torrent's name: a directory of its own
    // holds a link by that name.
    let dir = std::env::temp_dir().join(format!("metalroot-seed-{}", std::process::id()));
    let session = session(&a.swarm, &dir).await?;
    let name = {
        let probe = session
            .add_torrent(
                AddTorrent::from_bytes(bytes.clone()),
                Some(AddTorrentOptions {
                    list_only: true,
                    ..Default::default()
                }),
            )
            .await
            .context("reading the torrent")?;
        match probe {
            AddTorrentResponse::ListOnly(l) => l
                .info
                .name()
                .map(|n| n.into_owned())
                .context("the torrent has no name")?,
            _ => bail!("the torrent was added when it was only to be listed"),
        }
    };
    if name.contains('/') || name == ".." {
        bail!("the torrent's name {name:?} is not a plain file name");
    }
    let file =
        std::fs::canonicalize(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let link = dir.join(&name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&file, &link)
        .with_context(|| format!("linking {} to {}", link.display(), file.display()))?;
    eprintln!(
        "torrent: checking {} before seeding it for {} s on {}",
        file.display(),
        a.seconds,
        a.swarm.listen
    );
    let (_, h) = add(&session, &a.swarm, bytes, &dir).await?;
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let mut last_log = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = h.stats();
        if let Some(e) = &st.error {
            bail!("the engine stopped: {e}");
        }
        if last_log.elapsed() >= Duration::from_secs(30) {
            last_log = Instant::now();
            eprintln!(
                "torrent: seeding: {st}, {} bytes uploaded",
                st.uploaded_bytes
            );
        }
    }
    let st = h.stats();
    eprintln!(
        "torrent: seeded for {} s, {} bytes uploaded; stopping",
        a.seconds, st.uploaded_bytes
    );
    session.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
