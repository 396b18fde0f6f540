//! The host's own addresses, which are always allowlisted (banning yourself is a lockout).

use std::net::IpAddr;

/// Every address configured on any interface; empty (with a warning) if they cannot be read.
pub fn host_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(list) => {
            let mut out: Vec<IpAddr> = list
                .filter_map(|ifa| ifa.address)
                .filter_map(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                    }
                })
                .collect();
            out.sort();
            out.dedup();
            out
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the host's addresses; only configured and loopback addresses are allowlisted");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_addresses_are_readable() {
        // Loopback is up on every machine this runs on; it must be among the host's addresses.
        let a = super::host_addresses();
        assert!(a.contains(&"127.0.0.1".parse().unwrap()), "{a:?}");
        assert!(a.iter().all(|a| !a.is_unspecified()), "{a:?}");
    }
}
