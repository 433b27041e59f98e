//! The helper's pure parts: the allowlist's CIDRs and tracker URLs. Also
//! compiled into metalroot's own tests (tests/torrent_net.rs), so `cargo
//! test` covers them without building librqbit for a test profile.

use ipnet::IpNet;
use std::net::IpAddr;

/// CIDRs as the P2P range list librqbit's allowlist reads.
pub fn p2p_ranges(nets: &[IpNet]) -> String {
    nets.iter()
        .enumerate()
        .map(|(i, n)| format!("allow{i}:{}-{}\n", n.network(), n.broadcast()))
        .collect()
}

pub fn allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The host of a tracker's URL (`udp://h:6969/announce`, `http://[::1]/a`).
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_become_p2p_ranges() {
        let nets: Vec<IpNet> = vec![
            "192.168.77.0/24".parse().unwrap(),
            "10.0.2.2/32".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ];
        assert_eq!(
            p2p_ranges(&nets),
            "allow0:192.168.77.0-192.168.77.255\nallow1:10.0.2.2-10.0.2.2\nallow2:fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n"
        );
        assert!(allowed(&nets, "192.168.77.12".parse().unwrap()));
        assert!(!allowed(&nets, "192.168.78.1".parse().unwrap()));
    }

    #[test]
    fn tracker_hosts() {
        assert_eq!(url_host("udp://10.1.0.5:6969/announce"), Some("10.1.0.5"));
        assert_eq!(
            url_host("http://tracker.example/announce?x=1"),
            Some("tracker.example")
        );
        assert_eq!(url_host("http://[fd00::5]:80/a"), Some("fd00::5"));
        assert_eq!(url_host("http://u:p@h:1/a"), Some("h"));
        assert_eq!(url_host("nonsense"), None);
    }
}
