use anyhow::{bail, Result};

pub fn run() -> Result<()> {
    bail!("not implemented yet")
}
