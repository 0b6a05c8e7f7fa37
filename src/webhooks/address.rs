//! Where a webhook may point (server-side request forgery rules).
//!
//! A superuser types an endpoint's URL, but memberdesk makes the request
//! from inside its own network: without these rules a webhook could reach
//! the cloud metadata service (169.254.169.254), the database's host or an
//! admin port on localhost. So only `https` is accepted (`http` only with
//! `MEMBERDESK_WEBHOOK_ALLOW_HTTP`), and loopback, private, link-local and
//! other non-public addresses are refused (unless
//! `MEMBERDESK_WEBHOOK_ALLOW_PRIVATE`), checked on the addresses the name
//! resolves to: when the webhook is created, and again by the resolver the
//! delivery client connects through, at every attempt, so a name that later
//! resolves elsewhere (DNS rebinding) is refused too. Redirects are never
//! followed, and no proxy from the environment is used.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::{Switch, WebhookSettings};

/// The most characters an endpoint's URL may have.
pub const MAX_URL_LENGTH: usize = 2000;

/// The address rules of one deployment.
#[derive(Debug, Clone, Copy)]
pub struct AddressPolicy {
    pub allow_http: Switch,
    pub allow_private: Switch,
}

impl From<&WebhookSettings> for AddressPolicy {
    fn from(settings: &WebhookSettings) -> Self {
        AddressPolicy {
            allow_http: settings.allow_http,
            allow_private: settings.allow_private,
        }
    }
}

/// Why an endpoint is refused, in words for the API and the attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (carrier NAT), unspecified, multicast, broadcast or
/// documentation space, in IPv4 or IPv6 (an IPv4-mapped IPv6 address is
/// judged as the IPv4 address it carries).
pub fn is_public(addr: IpAddr) -> bool {
    match addr.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            let reserved = a == 0 || a >= 240;
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || shared
                || reserved)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            let documentation = first == 0x2001 && v6.segments()[1] == 0x0db8;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || unique_local
                || link_local
                || documentation)
        }
    }
}

impl AddressPolicy {
    /// Refuses an address the policy does not let memberdesk call.
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Refusal> {
        if self.allow_private.is_on() || is_public(addr) {
            return Ok(());
        }
        Err(Refusal(format!(
            "{addr} is a loopback, private, link-local or otherwise non-public address \
             (allowed only with MEMBERDESK_WEBHOOK_ALLOW_PRIVATE=true)"
        )))
    }

    /// Checks a URL's form: its scheme, a host, no credentials, its length.
    /// Returns the parsed URL; its addresses are checked by [`Self::resolve`].
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        if raw.chars().count() > MAX_URL_LENGTH {
            return Err(Refusal(format!(
                "the URL is longer than {MAX_URL_LENGTH} characters"
            )));
        }
        let url = Url::parse(raw.trim()).map_err(|e| Refusal(format!("not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http.is_on() => {}
            "http" => {
                return Err(Refusal(
                    "only https URLs are allowed (http only with MEMBERDESK_WEBHOOK_ALLOW_HTTP=true)"
                        .into(),
                ));
            }
            other => return Err(Refusal(format!("the scheme must be https, not {other}"))),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Refusal("the URL names no host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal(
                "the URL must not hold credentials: the signature authenticates memberdesk".into(),
            ));
        }
        Ok(url)
    }

    /// Checks the host of `url` when it is an IP address (the client's
    /// resolver never sees those); a name is left to the resolver.
    pub fn check_literal(&self, url: &Url) -> Result<(), Refusal> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_address(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check_address(ip.into()),
            _ => Ok(()),
        }
    }

    /// The addresses `url`'s host stands for, each allowed by the policy: an
    /// IP literal is checked as it is, a name is resolved once and every
    /// address it resolves to must pass (one refused address refuses all).
    pub async fn resolve(&self, url: &Url) -> Result<Vec<SocketAddr>, Refusal> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
            Some(url::Host::Domain(name)) => lookup(name, port).await?,
            None => return Err(Refusal("the URL names no host".into())),
        };
        for addr in &addrs {
            self.check_address(addr.ip())?;
        }
        Ok(addrs)
    }
}

/// The longest a name may take to resolve.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn lookup(name: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    let found: Vec<SocketAddr> =
        tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port)))
            .await
            .map_err(|_| Refusal(format!("{name} did not resolve within {LOOKUP_TIMEOUT:?}")))?
            .map_err(|e| Refusal(format!("{name} does not resolve: {e}")))?
            .collect();
    if found.is_empty() {
        return Err(Refusal(format!("{name} resolves to no address")));
    }
    Ok(found)
}

/// The delivery client's resolver: resolves each name once per connection
/// and hands the client only addresses the policy allows, so the address
/// checked is the address connected to.
struct CheckedResolver(AddressPolicy);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found = lookup(name.as_str(), 0).await?;
            for addr in &found {
                policy.check_address(addr.ip())?;
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client deliveries go through: the policy's resolver, no
/// redirects, no proxy, `timeout` per attempt.
pub fn client(
    policy: AddressPolicy,
    timeout: std::time::Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("memberdesk-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> AddressPolicy {
        AddressPolicy {
            allow_http: Switch::Off,
            allow_private: Switch::Off,
        }
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_must_be_https_with_a_host_and_no_credentials() {
        let p = strict();
        assert!(p.check_url("https://hooks.example.org/in").is_ok());
        assert!(p.check_url("http://hooks.example.org/in").is_err());
        assert!(p.check_url("ftp://hooks.example.org/in").is_err());
        assert!(p.check_url("https://user:pw@hooks.example.org/").is_err());
        assert!(p.check_url("not a url").is_err());
        let relaxed = AddressPolicy {
            allow_http: Switch::On,
            ..p
        };
        assert!(relaxed.check_url("http://hooks.example.org/in").is_ok());
    }

    #[tokio::test]
    async fn literal_and_resolved_private_addresses_are_refused() {
        let p = strict();
        for url in [
            "https://127.0.0.1/",
            "https://[::1]:8443/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
        ] {
            let url = p.check_url(url).unwrap();
            assert!(p.resolve(&url).await.is_err(), "{url}");
        }
        let open = AddressPolicy {
            allow_private: Switch::On,
            ..p
        };
        let url = open.check_url("https://127.0.0.1:9/").unwrap();
        assert_eq!(open.resolve(&url).await.unwrap().len(), 1);
    }
}
