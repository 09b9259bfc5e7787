//! Which address a request comes from: the connection's peer, or, when the peer is one of
//! `dashboard.trusted_proxies`, the client its `X-Forwarded-For` names. A header from any
//! other peer is ignored, so a client cannot choose the address it is throttled and logged as.

use std::net::IpAddr;

use poem::Request;
use poem::http::HeaderMap;

use crate::config::IpRange;

/// The request's client address; None when the connection has no IP peer (never, over TCP).
pub fn client_address(req: &Request, trusted: &[IpRange]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr()?.ip();
    Some(forwarded_client(peer, req.headers(), trusted))
}

/// The client that a request from `peer` with `headers` comes from.
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Each proxy appends the address it received the request from: read from the right, the
    // first hop that is not a trusted proxy is the client. Anything left of it, the client
    // may have written itself.
    let mut client = peer;
    let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    for hop in hops.iter().rev().flat_map(|value| value.rsplit(',')) {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request from `peer` with these `X-Forwarded-For` lines.
    fn from(peer: &str, forwarded: &[&str]) -> (IpAddr, HeaderMap) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().expect("a header value"));
        }
        (peer.parse().expect("an address"), headers)
    }

    fn client((peer, headers): &(IpAddr, HeaderMap), trusted: &[&str]) -> String {
        let trusted: Vec<IpRange> = trusted.iter().map(|t| t.parse().expect("a range")).collect();
        forwarded_client(*peer, headers, &trusted).to_string()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let spoofed = from("203.0.113.7", &["10.9.9.9"]);
        assert_eq!(client(&spoofed, &[]), "203.0.113.7");
        assert_eq!(client(&spoofed, &["10.0.0.0/8"]), "203.0.113.7", "the peer is no proxy");
        let proxied = from("10.0.0.2", &["198.51.100.4"]);
        assert_eq!(client(&proxied, &["10.0.0.0/8"]), "198.51.100.4");
        assert_eq!(client(&proxied, &[]), "10.0.0.2");
    }

    #[test]
    fn what_the_client_wrote_left_of_the_proxies_is_ignored() {
        let chain = from("10.0.0.2", &["6.6.6.6, 198.51.100.4", "10.0.0.3"]);
        assert_eq!(client(&chain, &["10.0.0.0/8"]), "198.51.100.4");
        let garbage = from("10.0.0.2", &["198.51.100.4, not-an-address"]);
        assert_eq!(client(&garbage, &["10.0.0.0/8"]), "10.0.0.2", "an unreadable hop stops the walk");
        let mapped = from("::ffff:10.0.0.2", &["198.51.100.4"]);
        assert_eq!(client(&mapped, &["10.0.0.2"]), "198.51.100.4");
    }
}
