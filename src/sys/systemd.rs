//! systemd over D-Bus, for `metalroot status` and for the waits that give up
//! once the units that would make their device have failed. A systemd initrd
//! usually runs no bus daemon: then this talks to systemd's private socket,
//! peer to peer (no Hello), as `systemctl` does.

use crate::args::Argv;
use anyhow::{Context, Result};
use clap::Args;
use std::path::Path;
use std::sync::OnceLock;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const PRIVATE: &str = "/run/systemd/private";
pub(crate) const SYSTEMD: &str = "org.freedesktop.systemd1";

/// The system bus if a bus daemon runs, else systemd's private socket.
pub(crate) async fn connect() -> Result<(Connection, &'static str)> {
    if Path::new(SYSTEM_BUS).exists() {
        let c = zbus::connection::Builder::address(format!("unix:path={SYSTEM_BUS}").as_str())
            .build()
            .await
            .with_context(|| format!("connecting to the system bus at {SYSTEM_BUS}"));
        match c {
            Ok(c) => return Ok((c, "the system bus")),
            Err(e) => tracing::info!("{e:#}; trying {PRIVATE}"),
        }
    }
    if !Path::new(PRIVATE).exists() {
        anyhow::bail!("neither {SYSTEM_BUS} nor {PRIVATE} exists: is systemd running?");
    }
    let stream = tokio::net::UnixStream::connect(PRIVATE)
        .await
        .with_context(|| format!("connecting to systemd at {PRIVATE} (are you root?)"))?;
    let c = zbus::connection::Builder::socket(Private(stream))
        .p2p()
        .build()
        .await
        .with_context(|| format!("D-Bus handshake with systemd at {PRIVATE}"))?;
    Ok((c, PRIVATE))
}

/// systemd's private socket, as a zbus socket. systemd answers there with
/// the sender `org.freedesktop.systemd1` (sd_bus_set_sender), a well-known
/// name where the D-Bus specification wants a unique one, and zbus refuses
/// such a message ("Invalid unique name"). The read half rewrites that
/// header field in place into a unique name of the same length.
#[derive(Debug)]
struct Private(tokio::net::UnixStream);

#[derive(Debug)]
struct PrivateRead(tokio::net::unix::OwnedReadHalf);

#[derive(Debug)]
struct PrivateWrite(tokio::net::unix::OwnedWriteHalf);

impl zbus::connection::Socket for Private {
    type ReadHalf = PrivateRead;
    type WriteHalf = PrivateWrite;

    fn split(self) -> zbus::connection::socket::Split<PrivateRead, PrivateWrite> {
        let (r, w) = self.0.into_split();
        zbus::connection::socket::Split::new(PrivateRead(r), PrivateWrite(w))
    }
}

#[zbus::export::async_trait::async_trait]
impl zbus::connection::socket::ReadHalf for PrivateRead {
    async fn recvmsg(
        &mut self,
        buf: &mut [u8],
    ) -> std::io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
        use tokio::io::AsyncReadExt;
        let n = self.0.read(buf).await?;
        patch_sender(&mut buf[..n]);
        Ok((n, Vec::new()))
    }

    fn auth_mechanism(&self) -> zbus::connection::AuthMechanism {
        // AUTH EXTERNAL with our uid: systemd checks the peer's credentials.
        zbus::connection::AuthMechanism::External
    }
}

#[zbus::export::async_trait::async_trait]
impl zbus::connection::socket::WriteHalf for PrivateWrite {
    async fn sendmsg(
        &mut self,
        buf: &[u8],
        _fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> std::io::Result<usize> {
        use tokio::io::AsyncWriteExt;
        self.0.write(buf).await
    }

    async fn close(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.0.shutdown().await
    }
}

/// The SENDER header field (code 7, signature "s", length 24) holding
/// `org.freedesktop.systemd1`, little- and big-endian.
const SENDER_FIELDS: [&[u8]; 2] = [
    b"\x07\x01s\x00\x18\x00\x00\x00org.freedesktop.systemd1\x00",
    b"\x07\x01s\x00\x00\x00\x00\x18org.freedesktop.systemd1\x00",
];
const UNIQUE_SENDER: &[u8; 24] = b":org.freedesktop.systemd";

/// Rewrites systemd's well-known sender name into a unique name of the same
/// length. zbus reads a message's header and body in one piece each, so a
/// field is never split across two reads.
pub fn patch_sender(buf: &mut [u8]) {
    for field in SENDER_FIELDS {
        let mut i = 0;
        while i + field.len() <= buf.len() {
            if &buf[i..i + field.len()] == field {
                buf[i + 8..i + 8 + UNIQUE_SENDER.len()].copy_from_slice(UNIQUE_SENDER);
                i += field.len();
            } else {
                i += 1;
            }
        }
    }
}

pub(crate) async fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> Result<R>
where
    B: serde::Serialize + zbus::DynamicType,
    R: for<'d> zbus::wire::DynamicDeserialize<'d>,
{
    let reply = conn
        .call_method(Some(SYSTEMD), path, Some(iface), method, body)
        .await
        .with_context(|| format!("D-Bus {iface}.{method} on {path}"))?;
    reply
        .body()
        .deserialize::<R>()
        .with_context(|| format!("reading the reply of {iface}.{method}"))
}

pub(crate) async fn property(
    conn: &Connection,
    path: &str,
    iface: &str,
    name: &str,
) -> Result<OwnedVariant> {
    call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &(iface, name),
    )
    .await
}

pub(crate) async fn string_property(
    conn: &Connection,
    path: &str,
    iface: &str,
    name: &str,
) -> String {
    property(conn, path, iface, name)
        .await
        .ok()
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_default()
}

/// The units that make the device this process waits for, set once by the
/// step from `--device-from`.
static FEEDERS: OnceLock<Vec<String>> = OnceLock::new();

/// For the steps that wait for a device another unit makes (an iSCSI
/// login, multipath, LUKS, LVM): without it a login refused for a wrong
/// secret left the root's wait to run out its whole timeout first.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitOpts {
    /// A unit that makes the device this step waits for; repeatable. Once
    /// every one of them has failed, the wait ends at once.
    #[arg(long = "device-from")]
    pub device_from: Vec<String>,
}

impl WaitOpts {
    pub(crate) fn push(&self, a: &mut Argv) {
        a.each("device-from", &self.device_from);
    }

    /// The waits of this process (`sys::retry::poll`) watch these units.
    pub fn watch(&self) {
        let _ = FEEDERS.set(self.device_from.clone());
    }
}

/// When every unit named by `--device-from` has failed: the reason to stop
/// waiting. None without such units, while one of them may still make the
/// device, or when systemd cannot be asked (the wait then runs its course).
pub fn feeders_failed() -> Option<String> {
    let units = FEEDERS.get().filter(|u| !u.is_empty())?;
    match zbus::block_on(active_states(units)) {
        Ok(states) => all_failed(units, &states),
        Err(e) => {
            tracing::debug!("cannot ask systemd about {}: {e:#}", units.join(", "));
            None
        }
    }
}

fn all_failed(units: &[String], states: &[String]) -> Option<String> {
    if units.is_empty() || states.len() != units.len() || states.iter().any(|s| s != "failed") {
        return None;
    }
    let which = if units.len() == 1 { "has" } else { "have all" };
    Some(format!(
        "{} {which} failed (journalctl -u {})",
        units.join(", "),
        units[0]
    ))
}

/// Each unit's ActiveState; "" for a unit systemd has not loaded.
async fn active_states(units: &[String]) -> Result<Vec<String>> {
    let (conn, _) = connect().await?;
    let mut out = Vec::new();
    for u in units {
        let path: Result<OwnedObjectPath> = call(
            &conn,
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "GetUnit",
            &(u.as_str(),),
        )
        .await;
        out.push(match path {
            Ok(p) => {
                string_property(
                    &conn,
                    p.as_str(),
                    "org.freedesktop.systemd1.Unit",
                    "ActiveState",
                )
                .await
            }
            Err(_) => String::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_gives_up_only_when_every_feeder_has_failed() {
        let units = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = units(&["metalroot-iscsi-1.service", "metalroot-iscsi-2.service"]);
        // One path dead, the other still logging in (or in): keep waiting.
        assert_eq!(all_failed(&two, &units(&["failed", "activating"])), None);
        assert_eq!(all_failed(&two, &units(&["failed", "active"])), None);
        // Not loaded (yet) is not failed.
        assert_eq!(all_failed(&two, &units(&["failed", ""])), None);
        assert_eq!(all_failed(&[], &[]), None);
        assert_eq!(
            all_failed(&two, &units(&["failed", "failed"])).as_deref(),
            Some(
                "metalroot-iscsi-1.service, metalroot-iscsi-2.service have all failed \
                 (journalctl -u metalroot-iscsi-1.service)"
            )
        );
        assert_eq!(
            all_failed(&two[..1], &units(&["failed"])).as_deref(),
            Some("metalroot-iscsi-1.service has failed (journalctl -u metalroot-iscsi-1.service)")
        );
    }

    #[test]
    fn systemds_sender_becomes_a_unique_name_of_the_same_length() {
        let mut msg = b"l\x02\x01\x01....\x05\x01u\x00\x02\x00\x00\x00".to_vec();
        msg.extend_from_slice(SENDER_FIELDS[0]);
        msg.extend_from_slice(b"\x08\x01g\x00\x01s\x00\x00org.freedesktop.systemd1");
        let before = msg.clone();
        patch_sender(&mut msg);
        assert_eq!(msg.len(), before.len());
        let s = String::from_utf8_lossy(&msg);
        assert!(s.contains("\x18\0\0\0:org.freedesktop.systemd\0"), "{s:?}");
        // The same name elsewhere (not a sender field) is left alone.
        assert!(s.ends_with("org.freedesktop.systemd1"), "{s:?}");
    }
}
