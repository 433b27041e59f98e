use anyhow::{bail, Result};

pub fn run(_a: crate::cli::FetchArgs) -> Result<()> {
    bail!("not implemented yet")
}
