//! Server-side request forgery guard for webhook targets.
//!
//! A target may not be, or resolve to, an address inside the gateway's own networks:
//! unspecified, loopback, private (RFC 1918), carrier-grade NAT (100.64/10), link-local (which
//! holds the cloud metadata address 169.254.169.254), IPv6 unique-local and link-local,
//! multicast, broadcast and the other reserved ranges; IPv4 addresses embedded in IPv6
//! (mapped, compatible, NAT64) are judged as IPv4. Checked when an endpoint is saved
//! ([`check_target`]) and again at every delivery: names are resolved by [`GuardedResolver`],
//! which hands the HTTP client only checked addresses, so the address connected to is the one
//! checked (no second lookup to rebind); IP-literal URLs are checked before sending. The
//! setting `--webhook-allow-private` turns the guard off for local development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Whether `ip` is an address webhooks may not reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return forbidden_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`)
/// or NAT64 (`64:ff9b::a.b.c.d`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    let mapped = s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff;
    let compatible = s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    (mapped || compatible || nat64).then_some(tail)
}

/// What a target URL may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_private: bool,
    pub https_only: bool,
}

/// Checks a URL's form (absolute http(s), a host, https when required) and, unless private
/// targets are allowed, an IP-literal host. The host name is not resolved here.
pub fn check_form(url: &str, policy: TargetPolicy) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("The url is not a valid URL ({e})."))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.https_only => {
            return Err("The url must use https (this gateway is set to https only).".into())
        }
        "http" => {}
        _ => return Err("The url must be an http or https URL.".into()),
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err("The url must name a host.".into());
    };
    if !policy.allow_private {
        if let Some(ip) = literal_ip(host).filter(|ip| is_forbidden(*ip)) {
            return Err(refusal(ip));
        }
    }
    Ok(parsed)
}

/// The address of an IP-literal host (`127.0.0.1`, `[::1]`).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn refusal(ip: IpAddr) -> String {
    format!(
        "The url leads to {ip}, an internal address (loopback, private, link-local, metadata or \
         reserved); webhooks may not target these."
    )
}

/// [`check_form`], then, unless private targets are allowed, resolves the host and refuses it
/// when any of its addresses is internal (or when it does not resolve).
pub async fn check_target(url: &str, policy: TargetPolicy) -> Result<Url, String> {
    let parsed = check_form(url, policy)?;
    if policy.allow_private {
        return Ok(parsed);
    }
    let name = parsed.host_str().unwrap_or_default();
    if literal_ip(name).is_none() {
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs = resolve_checked(name, port, false)
            .await
            .map_err(|e| e.to_string())?;
        if addrs.is_empty() {
            return Err(format!("The url's host {name} does not resolve."));
        }
    }
    Ok(parsed)
}

/// Why a host was refused at delivery.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("The url's host {0} could not be resolved: {1}")]
    Lookup(String, std::io::Error),
    #[error("{0}")]
    Forbidden(String),
}

async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ResolveError::Lookup(host.to_owned(), e))?
        .collect();
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
            return Err(ResolveError::Forbidden(refusal(bad.ip())));
        }
    }
    Ok(addrs)
}

/// The HTTP client's resolver: resolves, then refuses a name with any internal address
/// (unless allowed), so the client connects only to addresses that were checked.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(is_forbidden(ip(bad)), "{bad}");
        }
        for good in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_forbidden(ip(good)), "{good}");
        }
    }

    #[tokio::test]
    async fn targets_are_checked() {
        let strict = TargetPolicy {
            allow_private: false,
            https_only: false,
        };
        assert!(check_target("http://127.0.0.1:8080/x", strict)
            .await
            .is_err());
        assert!(check_target("http://[::1]/x", strict).await.is_err());
        assert!(check_target("http://169.254.169.254/latest", strict)
            .await
            .is_err());
        assert!(check_target("http://localhost/x", strict).await.is_err());
        assert!(check_target("ftp://example.com/", strict).await.is_err());
        assert!(check_target("not a url", strict).await.is_err());
        assert!(check_form("http://93.184.216.34/hook", strict).is_ok());
        let https = TargetPolicy {
            allow_private: true,
            https_only: true,
        };
        assert!(check_form("http://93.184.216.34/hook", https).is_err());
        assert!(check_form("https://127.0.0.1/hook", https).is_ok());
    }
}
