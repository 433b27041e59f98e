//! The whole pure core in one call: command line (+ site config) → entries.

use crate::cmdline::{split, Arg};
use crate::error::ParamError;
use crate::params::{requested, Config};
use crate::plan::{self, Plan, Secret};
use crate::units::{self, Entry};

/// What the generator must write.
#[derive(Debug, Default)]
pub struct Generated {
    pub entries: Vec<Entry>,
    pub secrets: Vec<Secret>,
    /// Set when the command line was refused; `entries` then holds only the
    /// failing unit.
    pub error: Option<ParamError>,
    pub notes: Vec<String>,
    /// Logged at warning priority before the notes.
    pub warnings: Vec<String>,
    /// The plan as `metalroot plan` prints it (or the refusal), for
    /// `metalroot status`; None when the command line does not ask.
    pub plan_text: Option<String>,
}

/// Parses and plans without rendering (for `metalroot plan`).
pub fn plan(site: Option<&str>, cmdline: &str) -> Result<Option<Plan>, ParamError> {
    let args = split(cmdline);
    if !requested(&args) {
        return Ok(None);
    }
    let site_args: Vec<Arg> = match site {
        Some(text) => crate::site::parse(text)?,
        None => Vec::new(),
    };
    let config = Config::parse(&site_args, &args)?;
    plan::build(config).map(Some)
}

pub fn generate(site: Option<&str>, cmdline: &str) -> Generated {
    match plan(site, cmdline) {
        Ok(None) => Generated::default(),
        Ok(Some(p)) => Generated {
            entries: units::render(&p),
            secrets: p.secrets.clone(),
            error: None,
            notes: p.notes.clone(),
            warnings: p.warnings.clone(),
            plan_text: Some(crate::render::text(&p)),
        },
        Err(e) => Generated {
            entries: units::render_error(&e),
            secrets: Vec::new(),
            plan_text: Some(format!(
                "metalroot plan\n  the command line was refused: {e}\n  nothing runs but metalroot-cmdline-error.service\n"
            )),
            error: Some(e),
            notes: Vec::new(),
            warnings: Vec::new(),
        },
    }
}
