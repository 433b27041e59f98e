//! `metalroot dhcp`: bring the network up without `ip=`, as dracut-metal-mdsquash
//! fleets boot (seed 000's lines have no `ip=` or `rd.neednet=1`). Planned
//! only when a step needs the network and the command line configures none:
//! it gives systemd-networkd one last-resort file, DHCP on every Ethernet
//! link, before networkd starts.

use crate::sys::cmd::run_ok;
use anyhow::{Context, Result};
use std::fs;
use std::path::Path;
use tracing::info;

/// Last in networkd's order: a site's own files (in the initrd) win.
pub const FILE: &str = "/run/systemd/network/99-metalroot-dhcp.network";

/// What `ip=dhcp` would set up. The generator's drop-in makes
/// systemd-networkd-wait-online wait for any one routable link, so a node
/// with unplugged NICs does not wait for them (with `RequiredForOnline=no`
/// on every link it waited its whole 120 s).
pub const CONTENTS: &str = "\
# Written by metalroot: no ip= on the kernel command line and a step needs
# the network (an http(s) image, iSCSI, a key URL). DHCP on every Ethernet
# link, as ip=dhcp would; add ip= to configure the network yourself.
[Match]
Type=ether
Kind=!*

[Network]
DHCP=yes
";

pub fn run() -> Result<()> {
    write(Path::new(FILE))?;
    // Ordered before systemd-networkd, so this only matters when the step
    // is re-run by hand: a running networkd reads the new file.
    if run_ok(&["networkctl", "reload"]) {
        info!("networkctl reload: systemd-networkd read {FILE}");
    }
    Ok(())
}

fn write(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, CONTENTS).with_context(|| format!("writing {}", path.display()))?;
    info!(
        "no ip= on the command line: DHCP on every Ethernet link ({})",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_fallback_network_file() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp
            .path()
            .join("run/systemd/network/99-metalroot-dhcp.network");
        write(&f).unwrap();
        let text = fs::read_to_string(&f).unwrap();
        assert!(text.contains("[Match]\nType=ether\n"));
        assert!(text.contains("DHCP=yes"));
        assert!(
            !text.contains("RequiredForOnline=no"),
            "wait-online would wait 120 s"
        );
    }
}
