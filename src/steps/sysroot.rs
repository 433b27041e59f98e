use anyhow::{bail, Result};

pub fn run(_a: crate::cli::SysrootArgs) -> Result<()> {
    bail!("not implemented yet")
}
