//! `metalroot fail MESSAGE`: the unit written for a refused command line.
//! It fails, so OnFailure= takes the boot to the emergency shell, and the
//! message is the first thing `systemctl status` shows.

use anyhow::{bail, Result};

pub fn run(message: &str) -> Result<()> {
    bail!("{message}")
}
