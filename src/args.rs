//! What every step's arguments share: the binary the units run, the root
//! they assemble, and `Argv`, which writes a step's typed arguments back
//! into the explicit ExecStart= argv that `systemctl cat` shows. Each
//! step's argument struct lives in the step's own module (`crate::steps`),
//! next to the code that reads it.

use std::fmt::Display;
use std::path::Path;

/// The step binary every unit runs.
pub const BIN: &str = "/usr/bin/metalroot";
/// Where the root is assembled and handed over from.
pub const SYSROOT: &str = "/sysroot";

/// Appends `--flag value` pairs in the order the step's page lists them.
#[derive(Default)]
pub struct Argv(pub Vec<String>);

impl Argv {
    pub(crate) fn flag(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}"));
        }
    }
    pub(crate) fn opt(&mut self, name: &str, v: impl Display) {
        let v = v.to_string();
        if v.starts_with('-') {
            // clap would read a separate "-1" as a flag: one word keeps it
            // a value (rd.iscsi.target.name=-1 once made an argv that its
            // own step could not parse).
            self.0.push(format!("--{name}={v}"));
        } else {
            self.0.push(format!("--{name}"));
            self.0.push(v);
        }
    }
    pub(crate) fn opt_if<T: Display>(&mut self, name: &str, v: Option<T>) {
        if let Some(v) = v {
            self.opt(name, v);
        }
    }
    pub(crate) fn each<T: Display>(&mut self, name: &str, vs: impl IntoIterator<Item = T>) {
        for v in vs {
            self.opt(name, v);
        }
    }
    pub(crate) fn path(&mut self, name: &str, p: Option<&Path>) {
        self.opt_if(name, p.map(Path::display));
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Cmd};

    /// A value that starts with '-' stays a value when the step reads its
    /// argv back.
    #[test]
    fn a_value_like_a_flag_round_trips() {
        let plan = crate::core::plan(None, "rd.iscsi.target.name=-1 metal.iscsi.discovery=0")
            .unwrap()
            .unwrap();
        let mut logins = 0;
        for st in &plan.steps {
            let back = Cli::try_parse_ordered(&st.argv).map(|c| c.cmd);
            assert!(back.is_ok(), "{:?}", st.argv);
            if let Ok(Cmd::IscsiLogin(a)) = back {
                assert!(
                    st.argv.contains(&"--target=-1".to_string()),
                    "{:?}",
                    st.argv
                );
                assert_eq!(Cmd::IscsiLogin(a).to_argv(), st.argv);
                logins += 1;
            }
        }
        assert_eq!(logins, 1);
    }
}
