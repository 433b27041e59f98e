use anyhow::{bail, Result};

pub fn run(_a: crate::cli::HandoverArgs) -> Result<()> {
    bail!("not implemented yet")
}
