//! The HTTP client of every metalroot step, and the small GET that fetches
//! a key with retries.

use crate::args::Argv;
use crate::sys::notify;
use crate::sys::retry::backoff;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use reqwest::blocking::Client;
use serde::Serialize;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing::warn;

/// How long a read may stall, in seconds, when metal.read-timeout is not given.
const DEFAULT_READ_TIMEOUT: u64 = 60;

/// Statuses a server may recover from: retried with backoff.
pub const RETRY_STATUS: &[u16] = &[408, 429, 500, 502, 503, 504];

/// The HTTP client's options, given to every step that fetches (the image,
/// a LUKS key); the parameters land here as they are (`Config::fetch`).
#[derive(Args, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpOpts {
    /// Extra CA certificate file for https (metal.ca).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Resolve and connect over IPv4 only (metal.ipv4=1).
    #[arg(long)]
    pub ipv4: bool,
    /// Seconds a read may stall before the request fails and is retried
    /// (metal.read-timeout).
    #[arg(long, default_value_t = DEFAULT_READ_TIMEOUT)]
    pub read_timeout: u64,
}

impl Default for HttpOpts {
    fn default() -> Self {
        HttpOpts {
            ca: None,
            ipv4: false,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

impl HttpOpts {
    pub(crate) fn push(&self, a: &mut Argv) {
        a.path("ca", self.ca.as_deref());
        a.flag("ipv4", self.ipv4);
        if self.read_timeout != DEFAULT_READ_TIMEOUT {
            a.opt("read-timeout", self.read_timeout);
        }
    }
}

/// The HTTP client of every metalroot step: connect and read timeouts (a
/// stalled server fails instead of hanging the boot), metal.ipv4, and the
/// site's CA.
pub fn client(o: &HttpOpts) -> Result<Client> {
    let mut b = Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // Blocking reqwest applies this to each read: a stalled server fails.
        .timeout(Duration::from_secs(o.read_timeout))
        .user_agent(concat!("metalroot/", env!("CARGO_PKG_VERSION")));
    if o.ipv4 {
        b = b.local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    }
    if let Some(ca) = &o.ca {
        let pem = fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().context("building the HTTP client")
}

/// A small secret (a LUKS key) from the URL kept in a secret file: the URL
/// is read, never shown unredacted, and the file is left for its owner.
pub fn get_small_from_url_file(
    url_file: &std::path::Path,
    opts: &HttpOpts,
    timeout: Duration,
    what: &str,
) -> Result<Vec<u8>> {
    let url = crate::sys::secrets::read(url_file)?;
    get_small(&client(opts)?, &url, what, timeout)
}

/// GETs a small body (a key) into memory, retrying connection errors,
/// timeouts and 408/429/5xx with backoff until `timeout` has passed. Any
/// other status fails at once: a 403 from an expired pre-signed URL or a
/// 404 does not get better by waiting. `what` names the body in messages;
/// the URL is shown without its password and query (the token).
pub fn get_small(client: &Client, url: &str, what: &str, timeout: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let redacted = crate::redact::redact_secret_url(url);
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let err = match client.get(url).send() {
            Ok(r) if r.status().is_success() => match r.bytes() {
                Ok(b) => return Ok(b.to_vec()),
                Err(e) => anyhow!("reading the body: {}", e.without_url()),
            },
            Ok(r) if RETRY_STATUS.contains(&r.status().as_u16()) => anyhow!("{}", r.status()),
            Ok(r) => bail!(
                "fetching {what} from {redacted}: {} (not retried)",
                r.status()
            ),
            Err(e) => anyhow!("{}", e.without_url()),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "fetching {what} from {redacted}: {err} (gave up after {attempt} attempts in {} s)",
                timeout.as_secs()
            );
        }
        let wait = backoff(attempt, left);
        warn!(
            "fetching {what} from {redacted} failed: {err}; retrying in {} s",
            wait.as_secs()
        );
        notify::status(&format!("retrying {what} in {} s: {err}", wait.as_secs()));
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server on 127.0.0.1 answering each connection with
    /// the next of `replies` (status line and body); returns its base URL.
    fn serve(replies: Vec<(&'static str, &'static str)>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for (status, body) in replies {
                let (mut c, _) = l.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    fn ipv4_client() -> Client {
        client(&HttpOpts {
            ipv4: true,
            ..HttpOpts::default()
        })
        .unwrap()
    }

    /// The key at `url`, retried for up to `secs` seconds; the error as text.
    fn key(url: &str, secs: u64) -> Result<Vec<u8>, String> {
        get_small(&ipv4_client(), url, "the key", Duration::from_secs(secs))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_stalled_read_fails_after_the_read_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/img", l.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            // Promises 10 bytes, sends 3, then stalls.
            let _ = write!(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            std::thread::sleep(Duration::from_secs(30));
        });
        let o = HttpOpts {
            read_timeout: 1,
            ..HttpOpts::default()
        };
        let e = client(&o)
            .unwrap()
            .get(&url)
            .send()
            .and_then(|r| r.bytes())
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
    }

    #[test]
    fn small_get_retries_a_busy_server() {
        let url = serve(vec![("503 Service Unavailable", ""), ("200 OK", "the-key")]);
        assert_eq!(key(&format!("{url}/k?tok=s3cr3t"), 60).unwrap(), b"the-key");
    }

    #[test]
    fn small_get_fails_at_once_on_forbidden_and_hides_the_token() {
        let url = serve(vec![("403 Forbidden", "")]);
        let t0 = Instant::now();
        let e = key(&format!("{url}/k?X-Amz-Signature=s3cr3t"), 60).unwrap_err();
        assert!(e.contains("403") && e.contains("not retried"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        // Not retried: no backoff wait happened (generous bound, not a timing test).
        assert!(t0.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn small_get_gives_up_at_its_deadline() {
        // Nothing listens there (the port was just freed).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = key(&format!("http://127.0.0.1:{port}/k"), 1).unwrap_err();
        assert!(e.contains("gave up after"), "{e}");
    }
}
