//! `metalroot trap`: seed 001's DisklessTrap. A shell on the console with the
//! root assembled at /sysroot; leaving it continues the boot.

use anyhow::{Context, Result};

pub fn run() -> Result<()> {
    eprintln!("\nmetalroot trap (metal.trap=1): the root is assembled at /sysroot.");
    eprintln!("Inspect or change it, then leave this shell (exit) to continue the boot.\n");
    let status = std::process::Command::new("/bin/sh")
        .arg("-i")
        .env("PS1", "metalroot-trap# ")
        .status()
        .context("starting /bin/sh")?;
    tracing::info!("trap shell left ({status}); continuing the boot");
    Ok(())
}
