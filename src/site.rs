//! Site defaults from an INI file in the initrd (`/etc/metalroot.conf`).
//!
//! ```ini
//! [cmdline]
//! metal.server = http://10.1.0.1/images http://10.1.0.2/images
//! metal.wipe-delay = 10
//! ```
//!
//! Keys are command-line parameter names; the command line overrides them.
//! List parameters take several values separated by spaces.

use crate::cmdline::Arg;
use crate::error::ParamError;

pub const PATH: &str = "etc/metalroot.conf";
pub const SECTION: &str = "cmdline";

pub fn parse(text: &str) -> Result<Vec<Arg>, ParamError> {
    let mut ini = configparser::ini::Ini::new_cs();
    let map = ini
        .read(text.to_string())
        .map_err(|e| ParamError::new("/etc/metalroot.conf", "", e))?;
    let mut args = Vec::new();
    for (section, keys) in map {
        if section != SECTION {
            return Err(ParamError::new(
                "/etc/metalroot.conf",
                &format!("[{section}]"),
                "unknown section; parameters go under [cmdline]",
            ));
        }
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort();
        for (key, value) in keys {
            match value {
                Some(v) if is_list(&key) => args.extend(v.split_whitespace().map(|w| Arg {
                    key: key.clone(),
                    value: Some(w.to_string()),
                })),
                value => args.push(Arg { key, value }),
            }
        }
    }
    Ok(args)
}

fn is_list(key: &str) -> bool {
    crate::params::is_list_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cmdline_section() {
        let a = parse("[cmdline]\nmetal.server = http://a/ http://b/\nmetal.disks=1\n").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].key, "metal.disks");
        assert_eq!(a[2].value.as_deref(), Some("http://b/"));
    }

    #[test]
    fn rejects_other_sections() {
        assert!(parse("[metal]\ndisks=1\n").is_err());
    }
}
