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
        self.0.push(format!("--{name}"));
        self.0.push(v.to_string());
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
