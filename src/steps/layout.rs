use anyhow::{bail, Result};

pub fn run(_a: crate::cli::LayoutArgs) -> Result<()> {
    bail!("not implemented yet")
}
