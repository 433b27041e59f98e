//! `metalroot plan`: prints the plan for a command line, touching nothing.

use crate::cli::PlanArgs;
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(a: PlanArgs) -> Result<()> {
    let cmdline = match a.cmdline {
        Some(c) => c,
        None => crate::generator::read_cmdline(Path::new("/"))?,
    };
    let site = match &a.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => crate::generator::read_site(Path::new("/"))?,
    };
    let plan = crate::core::plan(site.as_deref(), &cmdline)?;
    match (plan, a.json) {
        (None, _) => println!("the command line does not ask for metalroot: nothing would run"),
        (Some(p), true) => println!("{}", serde_json::to_string_pretty(&p)?),
        (Some(p), false) => print!("{}", crate::render::text(&p)),
    }
    Ok(())
}
