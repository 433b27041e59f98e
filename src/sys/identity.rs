//! A node's stable identity, for choosing where it starts among mirrors:
//! the same node picks the same mirror on every boot, and a fleet spreads
//! evenly over them.

use sha2::{Digest, Sha256};
use std::path::Path;

/// The first identity the node has, and what it is: the DMI product UUID,
/// the DMI serial number, the machine id, or the lowest-named interface's
/// MAC address. `root` is `/` (a test passes a fake tree).
pub fn node(root: &Path) -> Option<(String, &'static str)> {
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| meaningful(s))
    };
    if let Some(v) = read("sys/class/dmi/id/product_uuid") {
        return Some((v, "DMI product UUID"));
    }
    if let Some(v) = read("sys/class/dmi/id/product_serial") {
        return Some((v, "DMI serial number"));
    }
    if let Some(v) = read("etc/machine-id") {
        return Some((v, "machine id"));
    }
    let mut ifaces: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    ifaces.sort();
    ifaces
        .iter()
        .find_map(|i| read(&format!("sys/class/net/{i}/address")))
        .map(|mac| (mac, "MAC address"))
}

/// Firmware fills unset DMI fields with placeholders that many nodes share.
fn meaningful(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    !v.is_empty()
        && !v.chars().all(|c| "0-:".contains(c))
        && !v.chars().all(|c| "f-:".contains(c.to_ascii_lowercase()))
        && ![
            "not specified",
            "not settable",
            "not applicable",
            "to be filled by o.e.m.",
            "default string",
            "system serial number",
            "none",
        ]
        .contains(&lower.as_str())
}

/// Which of `n` mirrors a node with this identity starts at.
pub fn start(identity: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let h = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_le_bytes(first) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_first_placeholders_skipped_then_the_lowest_mac() {
        let d = tempfile::tempdir().unwrap();
        let put = |p: &str, v: &str| {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, v).unwrap();
        };
        put("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        put("sys/class/net/eth1/address", "52:54:00:00:00:02\n");
        put("sys/class/net/eth0/address", "52:54:00:00:00:01\n");
        assert_eq!(
            node(d.path()),
            Some(("52:54:00:00:00:01".into(), "MAC address"))
        );
        put(
            "sys/class/dmi/id/product_serial",
            "To Be Filled By O.E.M.\n",
        );
        put(
            "sys/class/dmi/id/product_uuid",
            "00000000-0000-0000-0000-000000000000\n",
        );
        assert_eq!(node(d.path()).unwrap().1, "MAC address");
        put(
            "sys/class/dmi/id/product_uuid",
            "4c4c4544-0033-4a10-8052-b2c04f4e4e32\n",
        );
        assert_eq!(
            node(d.path()),
            Some((
                "4c4c4544-0033-4a10-8052-b2c04f4e4e32".into(),
                "DMI product UUID"
            ))
        );
    }

    /// 3000 nodes over 3 mirrors: each gets about a third, and a node keeps
    /// its mirror.
    #[test]
    fn a_fleet_spreads_evenly_and_stably() {
        let mut count = [0usize; 3];
        for i in 0..3000 {
            count[start(&format!("52:54:00:00:{:02x}:{:02x}", i / 256, i % 256), 3)] += 1;
        }
        assert!(
            count.iter().all(|&c| (900..=1100).contains(&c)),
            "{count:?}"
        );
        assert_eq!(start("node-17", 5), start("node-17", 5));
        assert_eq!(start("x", 1), 0);
    }
}
