//! The root image: fetched onto the local array, or into RAM.

use super::{s, Net, Secret, Step, LIVE_MNT, RAM_IMAGE, SECRETS_DIR};
use crate::cli::Cmd;
use crate::cli::{FetchArgs, ImageArgs, MeasureArgs, SourceKind};
use crate::kinds::ImageSource;
use crate::params::{Config, Measure, Root};
use crate::values::Source;
use std::path::PathBuf;

/// Where the image comes from and where it goes.
pub struct Image {
    pub sources: Vec<Source>,
    /// Kept in RAM (metal.ram, or root=live:<url>) rather than on the array.
    /// rd.live.ram with metal.server is not: the image is cached on
    /// SQFSRAID for the next boot, then copied to RAM by the sysroot step.
    pub in_ram: bool,
}

impl Image {
    pub fn of(c: &Config) -> Image {
        let sources = match &c.root {
            Some(Root::LiveUrl { source }) => vec![source.clone()],
            _ => c.servers.clone(),
        };
        Image {
            sources,
            in_ram: c.ram.is_some() || matches!(c.root, Some(Root::LiveUrl { .. })),
        }
    }

    pub fn fetched(&self) -> bool {
        !self.sources.is_empty()
    }
}

/// The image's sources as the fetch and the wipe's preflight take them.
/// Sources with a password go to 0600 files (once), never into argv.
pub fn sources(c: &Config, image: &Image, secrets: &mut Vec<Secret>) -> ImageArgs {
    let mut sources = Vec::new();
    let mut source_files = Vec::new();
    let mut order = Vec::new();
    for (i, src) in image.sources.iter().enumerate() {
        match src {
            Source::Http {
                url,
                has_password: true,
            } => {
                let path = format!("{SECRETS_DIR}/source-{}.url", i + 1);
                secrets.push(Secret {
                    path: path.clone(),
                    contents: url.clone(),
                });
                source_files.push(PathBuf::from(path));
                order.push(SourceKind::File);
                continue;
            }
            Source::Http { url, .. } => sources.push(ImageSource::Url(url.clone())),
            Source::File { dir, label } => sources.push(ImageSource::Labelled {
                dir: dir.clone(),
                label: label.clone(),
            }),
        }
        order.push(SourceKind::Url);
    }
    ImageArgs {
        sources,
        source_files,
        image: c.squashimg.clone(),
        exact_url: matches!(c.root, Some(Root::LiveUrl { .. })),
        order,
    }
}

/// The fetch step, after the layout when the disks are paved.
pub fn plan(c: &Config, image: &Image, src: ImageArgs, paves: bool) -> Option<Step> {
    if !image.fetched() {
        return None;
    }
    let on_array = !image.in_ram;
    let args = FetchArgs {
        src,
        dest_file: image.in_ram.then(|| PathBuf::from(RAM_IMAGE)),
        dest_label: on_array.then(|| super::disks::sqfs_label(c)),
        mount: on_array.then(|| PathBuf::from(LIVE_MNT)),
        dir: if on_array {
            c.live_dir.clone()
        } else {
            s(crate::kinds::DEFAULT_LIVE_DIR)
        },
        opts: c.fetch.clone(),
    };
    let mut st = Step::new(
        "metalroot-fetch",
        format!(
            "metalroot: fetch the root image from {}",
            image
                .sources
                .iter()
                .map(Source::shown)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Cmd::Fetch(args),
    );
    if image
        .sources
        .iter()
        .any(|x| matches!(x, Source::Http { .. }))
    {
        st.net = Net::Online;
    }
    // A trusted key from the credential store (never from the image's server).
    st.credentials.extend(c.fetch.verify_key.clone());
    if paves {
        st.requires.push(s("metalroot-layout.service"));
    }
    Some(st)
}

/// Measured boot: after the fetch and before the root is mounted, the
/// image's SHA-256 goes into a PCR (metal.tpm-pcr). Not fatal: a node
/// without a TPM logs it and boots; a failed extend shows as a failed unit.
pub fn measure(c: &Config, fetch_unit: Option<&str>, sysroot: bool) -> Option<Step> {
    let fetch_unit = fetch_unit?;
    let (pcr, when_signed) = match c.measure {
        Measure::Off => return None,
        Measure::WhenSigned => (crate::kinds::DEFAULT_TPM_PCR, true),
        Measure::Always(pcr) => (pcr, false),
    };
    let mut st = Step::new(
        "metalroot-measure",
        format!("metalroot: measure the root image into TPM PCR {pcr}"),
        Cmd::Measure(MeasureArgs {
            pcr,
            when_signed,
            record: PathBuf::from(crate::kinds::IMAGE_RECORD),
            event_log: PathBuf::from(crate::kinds::EVENT_LOG),
        }),
    );
    st.requires.push(s(fetch_unit));
    if sysroot {
        st.before.push(s("metalroot-sysroot.service"));
    }
    st.before.push(s("initrd.target"));
    st.wanted_by.push(s("initrd.target"));
    st.timeout_sec = Some(60);
    st.fatal = false;
    Some(st)
}

/// What `metalroot plan` says of the image's checks and its measurement,
/// metalroot's own additions to a fetch.
pub fn notes(c: &Config, image: &Image) -> Vec<String> {
    use crate::kinds::{Verify, KEYS_DIR};
    let key = match &c.fetch.verify_key {
        Some(k) => format!("{KEYS_DIR}/*.pub and the credential {k}"),
        None => format!("{KEYS_DIR}/*.pub"),
    };
    let mut n = vec![match c.fetch.verify {
        None => format!("verify: the image's minisign signature (<image>.minisig) when a trusted key is in {key}, else its sha256 (metalroot's own; metal.verify= chooses)"),
        Some(Verify::Signature) => format!("verify: the image's minisign signature (<image>.minisig) by a key in {key}; an unsigned or changed image is refused"),
        Some(Verify::Sha256) => s("verify: the image's sha256 only (metal.verify=sha256)"),
        Some(Verify::None) => s("verify: nothing (metal.verify=none)"),
    }];
    if image.sources.len() > 1 {
        n.push(if c.fetch.spread {
            s("mirrors: each node starts at the metal.server its identity picks (a stable hash of its DMI UUID, serial, machine id or MAC), then fails over to the others in order (metal.server-spread=1, metalroot's own)")
        } else {
            s("mirrors: tried in the order given (metal.server-spread=1 spreads a fleet over them)")
        });
    }
    if let Some(t) = &c.fetch.torrent.torrent {
        let o = &c.fetch.torrent;
        n.push(format!("torrent: peers share the image ({t}; metal.torrent, metalroot's own): {} peers given, peers only from {}, upload at most {} MiB/s, no DHT or local discovery; pieces the swarm does not deliver within {} s come from the mirrors by range request, and the whole image is verified as above", o.torrent_peers.len(), o.allowed().join(" "), o.torrent_upload >> 20, o.torrent_timeout));
        n.push(if o.torrent_seed > 0 {
            format!("torrent: the booted system seeds the image for {} s (metalroot-seed.service under /run; metal.torrent-seed=0 turns it off)", o.torrent_seed)
        } else {
            s("torrent: the booted system does not seed (metal.torrent-seed=0)")
        });
    }
    n.push(s("retries: exponential backoff with jitter (1-2 s, 2-4 s, then up to 15-30 s) until metal.fetch-timeout"));
    n.push(match c.measure {
        Measure::WhenSigned => format!("measure: a signature-checked image's SHA-256 is extended into TPM PCR {} when the node has a TPM 2.0 (metalroot's own; metal.tpm-pcr=N measures every image, metal.tpm-pcr=off none)", crate::kinds::DEFAULT_TPM_PCR),
        Measure::Always(pcr) => format!("measure: the image's SHA-256 is extended into TPM PCR {pcr} when the node has a TPM 2.0 (metal.tpm-pcr={pcr})"),
        Measure::Off => s("measure: off (metal.tpm-pcr=off)"),
    });
    n
}
