//! Parsers for the kinds of values the command line carries: booleans,
//! bounded numbers, sizes, device specs and image sources.

use crate::error::ParamError;
pub use crate::kinds::{DevSpec, Size};
use crate::redact::redact_url;
use crate::sys::udev::disk_by;
use serde::Serialize;

/// dracut's `getargbool`: a bare key is true; 1/yes/y/on/true and
/// 0/no/n/off/false; anything else is an error rather than a guess.
pub fn boolean(param: &str, value: Option<&str>) -> Result<bool, ParamError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("1" | "yes" | "y" | "on" | "true") => Ok(true),
        Some("0" | "no" | "n" | "off" | "false") => Ok(false),
        Some(_) => Err(ParamError::new(
            param,
            value.unwrap_or_default(),
            "expected 1 or 0 (yes/no, on/off, true/false)",
        )),
    }
}

/// A whole number within `[min, max]`. Out-of-range values are an error, not
/// silently clamped: a typo in a wipe parameter must not go unnoticed.
pub fn number(param: &str, value: Option<&str>, min: u64, max: u64) -> Result<u64, ParamError> {
    let v = required(param, value)?;
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(ParamError::new(
            param,
            v,
            format!("must be between {min} and {max}"),
        )),
        Err(_) => Err(ParamError::new(
            param,
            v,
            format!("expected a whole number between {min} and {max}"),
        )),
    }
}

pub fn required<'a>(param: &str, value: Option<&'a str>) -> Result<&'a str, ParamError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParamError::new(param, "", "a value is required")),
    }
}

impl Size {
    pub fn parse(param: &str, value: Option<&str>) -> Result<Size, ParamError> {
        let v = required(param, value)?;
        v.parse().map_err(|why| ParamError::new(param, v, why))
    }
}

impl DevSpec {
    pub fn parse(param: &str, value: &str) -> Result<DevSpec, ParamError> {
        value
            .parse()
            .map_err(|why| ParamError::new(param, value, why))
    }

    /// The udev path of the device, as fstab would resolve it.
    pub fn dev_path(&self) -> String {
        match self {
            DevSpec::Label(s) => disk_by("label", s),
            DevSpec::Uuid(s) => disk_by("uuid", &s.to_lowercase()),
            DevSpec::PartUuid(s) => disk_by("partuuid", &s.to_lowercase()),
            DevSpec::PartLabel(s) => disk_by("partlabel", s),
            DevSpec::Path(p) => p.clone(),
        }
    }
}

/// Where the squashfs image comes from (`metal.server=`, seed 000).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum Source {
    /// http:// or https://. `has_password` marks a URL with user:password@,
    /// which is handed to the fetch step through a 0600 file, never in argv.
    Http {
        #[serde(serialize_with = "ser_redacted_url")]
        url: String,
        has_password: bool,
    },
    /// `file://<dir>?LABEL=<label>`: a directory on a labelled device.
    File { dir: String, label: String },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

fn ser_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

impl Source {
    pub fn parse(param: &str, value: Option<&str>) -> Result<Source, ParamError> {
        let v = required(param, value)?;
        let shown = redact_url(v);
        let bad = |why: &str| ParamError::new(param, &shown, why.to_string());
        let (scheme, rest) = v
            .split_once("://")
            .ok_or_else(|| bad("expected http://, https:// or file://<dir>?LABEL=<label>"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {
                if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(bad("the URL holds a space or control character"));
                }
                // The url crate reads `http:///y` as host `y`: an empty
                // authority is refused first.
                if rest.starts_with(['/', '?', '#']) {
                    return Err(bad("the URL has no host"));
                }
                let u = url::Url::parse(v).map_err(|e| match e {
                    url::ParseError::EmptyHost => bad("the URL has no host"),
                    e => bad(&format!("not a URL: {e}")),
                })?;
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(bad("the URL has no host"));
                }
                // Any user info is a credential: kept out of argv.
                let has_password = !u.username().is_empty() || u.password().is_some();
                Ok(Source::Http {
                    url: v.to_string(),
                    has_password,
                })
            }
            // metalroot's own form, not an RFC 8089 file URL: the directory
            // starts right after `//` (there is no host), so the url crate,
            // which would take and lowercase its first part as a host, is
            // not used here.
            "file" => {
                let (dir, query) = rest
                    .split_once('?')
                    .ok_or_else(|| bad("a file:// source needs ?LABEL=<label>"))?;
                let label = query
                    .strip_prefix("LABEL=")
                    .filter(|l| !l.is_empty() && !l.contains(['/', '&']))
                    .ok_or_else(|| bad("a file:// source needs ?LABEL=<label>"))?;
                if dir.split('/').any(|c| c == "..") {
                    return Err(bad("the directory may not contain '..'"));
                }
                Ok(Source::File {
                    dir: dir.trim_matches('/').to_string(),
                    label: label.to_string(),
                })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other}://; metalroot fetches over http, https and file"
            ))),
        }
    }

    /// How the source is shown in logs and plans: no password.
    pub fn shown(&self) -> String {
        match self {
            Source::Http { url, .. } => redact_url(url),
            Source::File { dir, label } => format!("file://{dir}?LABEL={label}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        assert!(boolean("x", None).unwrap());
        assert!(!boolean("x", Some("0")).unwrap());
        assert!(boolean("x", Some("Yes")).unwrap());
        let e = boolean("metal.no-wipe", Some("maybe")).unwrap_err();
        assert!(e.to_string().contains("metal.no-wipe=\"maybe\""), "{e}");
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(number("n", Some("5"), 2, 60).unwrap(), 5);
        assert!(number("n", Some("1"), 2, 60).is_err());
        assert!(number("n", Some("-1"), 0, 60).is_err());
        assert!(number("n", Some(""), 0, 60).is_err());
        assert!(number("n", None, 0, 60).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("s", Some("4G")).unwrap(), Size::Bytes(4 << 30));
        assert_eq!(
            Size::parse("s", Some("50%")).unwrap(),
            Size::PercentOfRam(50)
        );
        assert!(Size::parse("s", Some("0")).is_err());
        assert!(Size::parse("s", Some("4X")).is_err());
        assert!(Size::parse("s", Some("999999999999T")).is_err());
    }

    #[test]
    fn devspecs() {
        assert_eq!(
            DevSpec::parse("p", "LABEL=SQFSRAID").unwrap().dev_path(),
            "/dev/disk/by-label/SQFSRAID"
        );
        assert_eq!(
            DevSpec::parse("p", "CDLABEL=My Disk").unwrap().dev_path(),
            "/dev/disk/by-label/My\\x20Disk"
        );
        assert!(DevSpec::parse("p", "/dev/sdb").is_ok());
        assert!(DevSpec::parse("p", "sdb").is_err());
        assert!(DevSpec::parse("p", "LABEL=").is_err());
        assert!(DevSpec::parse("p", "LABEL=a/b").is_err());
    }

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse(
                "metal.server",
                Some("file://ephemeral/data/ceph/?LABEL=PITDATA")
            )
            .unwrap(),
            Source::File {
                dir: "ephemeral/data/ceph".into(),
                label: "PITDATA".into()
            }
        );
        assert!(matches!(
            Source::parse("m", Some("file://?LABEL=SQFSRAID")).unwrap(),
            Source::File { .. }
        ));
        assert!(Source::parse("m", Some("ftp://x/y")).is_err());
        assert!(Source::parse("m", Some("http:///y")).is_err());
        assert!(Source::parse("m", Some("http://h:99999/y")).is_err());
        assert!(Source::parse("m", Some("http://[::1/y")).is_err());
        let e = Source::parse("m", Some("scp://u:hunter2@h/y")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let s = Source::parse("m", Some("https://u:hunter2@h/y?X-Amz-Signature=abc")).unwrap();
        assert_eq!(s.shown(), "https://u:<redacted>@h/y?X-Amz-Signature=abc");
    }
}
