use anyhow::{bail, Result};

pub fn run(_a: crate::cli::WipeArgs) -> Result<()> {
    bail!("not implemented yet")
}
