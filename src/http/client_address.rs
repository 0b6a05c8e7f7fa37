//! The client's address, for failed-login limits and the audit log.
//!
//! Behind a load balancer every request comes from the balancer, so the
//! socket peer alone would put all clients in one bucket. `X-Forwarded-For`
//! names the client, but anyone can send it: it is believed only when the
//! peer is one of `MEMBERDESK_TRUSTED_PROXIES`, and then only as far as the
//! trusted proxies wrote it. Each proxy appends the address it received the
//! request from, so reading from the right, the first entry that is not a
//! trusted proxy is the client; entries left of it are the client's own
//! words and are ignored.

use std::net::{IpAddr, SocketAddr};

use poem::Request;

use crate::config::TrustedProxies;

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of `req` as text, or `None` when the transport has
/// no IP peer.
pub fn of(req: &Request, trusted: &TrustedProxies) -> Option<String> {
    let peer = req.remote_addr().as_socket_addr()?.ip();
    let forwarded: Vec<&str> = req
        .headers()
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(client(peer, &forwarded, trusted).to_string())
}

/// The client behind `peer`, given the `X-Forwarded-For` header lines.
pub fn client(peer: IpAddr, forwarded_for: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let mut nearest = peer.to_canonical();
    if !trusted.contains(nearest) {
        return nearest;
    }
    let entries = forwarded_for.iter().flat_map(|line| line.split(','));
    for entry in entries.collect::<Vec<_>>().into_iter().rev() {
        let Some(addr) = parse_entry(entry) else {
            // A trusted proxy wrote nothing unreadable; whatever is left of
            // it came from the client. The last proxy is all we know.
            return nearest;
        };
        nearest = addr;
        if !trusted.contains(addr) {
            return addr;
        }
    }
    nearest
}

/// `203.0.113.7`, `2001:db8::1`, or with a port: `203.0.113.7:4711`, `[2001:db8::1]:4711`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_read_only_as_far_as_trusted_proxies_wrote_it() {
        let proxies = TrustedProxies::parse("T", "10.0.0.0/8").unwrap();
        // Untrusted peer (or none trusted): the header is the client's word, ignored.
        let untrusted_peer = client(ip("198.51.100.9"), &["203.0.113.7"], &proxies);
        assert_eq!(untrusted_peer, ip("198.51.100.9"));
        let none_trusted = client(ip("10.0.0.2"), &["203.0.113.7"], &TrustedProxies::default());
        assert_eq!(none_trusted, ip("10.0.0.2"));
        // Behind a trusted proxy: (peer, the header's lines, the client).
        let behind_proxies: [(&str, &[&str], &str); 8] = [
            // The right-most untrusted entry, past any further proxies; a
            // spoofed left-most entry is not the client.
            ("10.0.0.2", &["203.0.113.7"], "203.0.113.7"),
            (
                "10.0.0.2",
                &["1.2.3.4, 203.0.113.7, 10.0.0.9"],
                "203.0.113.7",
            ),
            ("10.0.0.2", &["1.2.3.4", "203.0.113.7:4711"], "203.0.113.7"),
            ("10.0.0.2", &["[2001:db8::1]:80"], "2001:db8::1"),
            // No header, or only proxies: the nearest proxy.
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &["10.0.0.3"], "10.0.0.3"),
            // Garbage where the client's address should be: the last proxy.
            ("10.0.0.2", &["unknown"], "10.0.0.2"),
            ("::ffff:10.0.0.2", &["203.0.113.7"], "203.0.113.7"),
        ];
        for (peer, forwarded, expected) in behind_proxies {
            let found = client(ip(peer), forwarded, &proxies);
            assert_eq!(found, ip(expected), "{peer} {forwarded:?}");
        }
    }
}
