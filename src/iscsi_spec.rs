//! dracut's `netroot=iscsi:` syntax (RFC 4173 with dracut's additions):
//!
//! `iscsi:[user:pass[:user_in:pass_in]@][server]:[proto]:[port][:[iface]:[netdev]]:[lun]:target`

use crate::error::ParamError;
use serde::Serialize;

pub const DEFAULT_PORT: u16 = 3260;

/// CHAP credentials; `Debug` never prints the passwords.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct Chap {
    pub username: String,
    #[serde(skip)]
    pub password: String,
    pub username_in: Option<String>,
    #[serde(skip)]
    pub password_in: Option<String>,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("username_in", &self.username_in)
            .finish()
    }
}

/// One iSCSI target to log in to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscsiTarget {
    /// Portal address; `None` means: find the target by discovery.
    pub server: Option<String>,
    pub port: u16,
    pub target: String,
    pub lun: u32,
    /// How the session reaches the portal (netroot=iscsi:…:<iface>).
    pub iface: Option<String>,
    pub netdev: Option<String>,
    pub chap: Option<Chap>,
}

/// Parses the part of `netroot=` after `iscsi:`. `param` names the parameter in
/// errors (`netroot` or `root`). Credentials are never echoed in an error.
pub fn parse(param: &str, spec: &str) -> Result<IscsiTarget, ParamError> {
    // The error shows the value without its credentials.
    let (auth, rest) = match spec.rfind('@') {
        Some(i) => (Some(&spec[..i]), &spec[i + 1..]),
        None => (None, spec),
    };
    let shown = format!("iscsi:{rest}");
    let err = |why: &str| ParamError::new(param, &shown, why.to_string());

    let chap =
        match auth {
            None => None,
            Some(a) => {
                let f: Vec<&str> = a.split(':').collect();
                match f.as_slice() {
                    [u, p] if !u.is_empty() && !p.is_empty() => Some(Chap {
                        username: u.to_string(),
                        password: p.to_string(),
                        ..Chap::default()
                    }),
                    [u, p, ui, pi] if !u.is_empty() && !p.is_empty() => Some(Chap {
                        username: u.to_string(),
                        password: p.to_string(),
                        username_in: Some(ui.to_string()).filter(|s| !s.is_empty()),
                        password_in: Some(pi.to_string()).filter(|s| !s.is_empty()),
                    }),
                    _ => return Err(err(
                        "credentials must be user:password or user:password:user_in:password_in",
                    )),
                }
            }
        };

    // The server may be an IPv6 address in brackets, which holds colons.
    let (server, after) = if let Some(r) = rest.strip_prefix('[') {
        let end = r
            .find(']')
            .ok_or_else(|| err("IPv6 server address has no closing ']'"))?;
        let tail = r[end + 1..]
            .strip_prefix(':')
            .ok_or_else(|| err("expected ':' after the bracketed server address"))?;
        (Some(r[..end].to_string()), tail)
    } else {
        let (s, tail) = rest
            .split_once(':')
            .ok_or_else(|| err("expected server:protocol:port:lun:targetname"))?;
        (Some(s.to_string()).filter(|s| !s.is_empty()), tail)
    };

    let fields: Vec<&str> = after.split(':').collect();
    if fields.len() < 4 {
        return Err(err("expected server:protocol:port:lun:targetname"));
    }
    let (proto, port) = (fields[0], fields[1]);
    if !(proto.is_empty() || proto == "6") {
        return Err(err("only protocol 6 (TCP) is supported"));
    }
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        port.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| err("port must be a number from 1 to 65535"))?
    };

    // The target name holds colons itself; it starts at the first field that
    // looks like an iSCSI name. Before it: [lun] or [iface, netdev, lun].
    let rest = &fields[2..];
    let tstart = rest
        .iter()
        .position(|f| is_iscsi_name_start(f))
        .unwrap_or(1.min(rest.len() - 1));
    let (iface, netdev, lun) = match tstart {
        1 => (None, None, rest[0]),
        3 => (
            Some(rest[0].to_string()).filter(|s| !s.is_empty()),
            Some(rest[1].to_string()).filter(|s| !s.is_empty()),
            rest[2],
        ),
        _ => return Err(err("expected [iface:netdev:]lun:targetname after the port")),
    };
    let lun = if lun.is_empty() {
        0
    } else {
        lun.parse::<u32>()
            .map_err(|_| err("LUN must be a whole number"))?
    };
    let target = rest[tstart..].join(":");
    if target.is_empty() {
        return Err(err("the target name is empty"));
    }
    Ok(IscsiTarget {
        server,
        port,
        iface,
        netdev,
        lun,
        target,
        chap,
    })
}

fn is_iscsi_name_start(f: &str) -> bool {
    let f = f.to_ascii_lowercase();
    f.starts_with("iqn.") || f.starts_with("eui.") || f.starts_with("naa.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netroot=iscsi: spec's server, port, LUN and target.
    fn portal_lun_target(spec: &str) -> (Option<String>, u16, u32, String) {
        let t = parse("netroot", spec).unwrap();
        (t.server, t.port, t.lun, t.target)
    }

    #[test]
    fn dracut_example() {
        let spec = "192.168.50.1::::iqn.2009-06.dracut:target0";
        assert_eq!(
            portal_lun_target(spec),
            (
                Some("192.168.50.1".into()),
                3260,
                0,
                "iqn.2009-06.dracut:target0".into()
            )
        );
        assert!(parse("netroot", spec).unwrap().chap.is_none());
    }

    #[test]
    fn ipv6_and_lun_and_port() {
        assert_eq!(
            portal_lun_target("[2001:DB8::1]:6:3261:2:iqn.2009-06.dracut:t"),
            (
                Some("2001:DB8::1".into()),
                3261,
                2,
                "iqn.2009-06.dracut:t".into()
            )
        );
    }

    #[test]
    fn mutual_chap_and_iface() {
        let t = parse(
            "netroot",
            "u:p:ui:pi@10.0.0.1::3260:default:eth0:1:iqn.2001-04.com.example:storage",
        )
        .unwrap();
        let c = t.chap.unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert_eq!(c.password_in.as_deref(), Some("pi"));
        assert_eq!(t.iface.as_deref(), Some("default"));
        assert_eq!(t.netdev.as_deref(), Some("eth0"));
        assert_eq!(t.lun, 1);
    }

    #[test]
    fn empty_server_means_discovery() {
        let t = parse("netroot", ":::0:iqn.2009-06.dracut:t").unwrap();
        assert_eq!(t.server, None);
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = parse("netroot", "user:s3cret@10.0.0.1:7:::iqn.x:y").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("netroot"));
        let e = parse("netroot", "user:s3cret:x@10.0.0.1::::iqn.x:y").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn bad_port_and_lun() {
        assert!(parse("netroot", "1.2.3.4::99999::iqn.a:b").is_err());
        assert!(parse("netroot", "1.2.3.4:::x:iqn.a:b").is_err());
        assert!(parse("netroot", "1.2.3.4").is_err());
        assert!(parse("netroot", "1.2.3.4::::").is_err());
    }
}
