//! `systemd-analyze verify` of generated units, as the golden and the
//! generator tests run it (included by path by both).

use std::fs;
use std::process::Command;

/// Verifies the units (file name, text) together, with `installed` (the
/// ExecStart= binary's path on a real system) pointed at the built binary:
/// verify checks that it exists. The error is verify's output.
pub fn verify(units: &[(String, String)], installed: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (name, text) in units {
        let p = tmp.path().join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, text.replace(installed, env!("CARGO_BIN_EXE_metalroot"))).expect("write");
        paths.push(p);
    }
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .output()
        .expect("systemd-analyze is required (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(stderr.into_owned())
    }
}
