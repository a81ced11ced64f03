//! Where the L2 is and how to reach it: a URL (`redis://`, `rediss://` with the system's roots or
//! a [`TlsConfig`], `#insecure` for self-signed test servers, `user:password@` for ACL), a
//! redis-rs [`Client`](redis::Client) the service built itself, a master name and its
//! sentinels, or a cluster's seed nodes. Also what the builder needs
//! around that: the URL with its password hidden (for `Debug`), and the build-time verdict on a
//! connection that failed for a reason retrying cannot fix (refused credentials, a TLS handshake
//! that fails), which is a [`ConfigError`] rather than "Redis is down".
//!
//! Owns the turning of settings into a deployment (a `redis::Client`, a Sentinel target, a
//! cluster client) and the classification of the first connection's failure; never touches the store's connection slot, circuit or key layout.

use std::fmt;

use std::sync::Arc;

use crate::error::{ConfigError, ConfigErrorKind, Error, RedisFailure};
use crate::store::redis::deployment::Deployment;
use crate::store::redis::sentinel::SentinelTarget;

/// TLS settings for a `rediss://` URL: the CA to trust instead of the system's roots, and a client
/// certificate for mutual TLS. All PEM. Without a `TlsConfig`, a `rediss://` URL trusts the
/// system's roots (and `rediss://host:port/#insecure` accepts any certificate: test servers only).
///
/// ```
/// use cache_core::TlsConfig;
/// # let (ca, cert, key) = (Vec::new(), Vec::new(), Vec::new());
/// let tls = TlsConfig::new().ca_pem(ca).client_certificate(cert, key);
/// assert!(format!("{tls:?}").contains("<redacted>"), "no key material in Debug");
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct TlsConfig {
    ca_pem: Option<Vec<u8>>,
    client_cert_pem: Option<Vec<u8>>,
    client_key_pem: Option<Vec<u8>>,
}

impl TlsConfig {
    /// No CA (the system's roots) and no client certificate.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// Trust these CA certificates (PEM, one or more) instead of the system's roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> TlsConfig {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Present this certificate (PEM, chain allowed) with its private key (PEM) to the server:
    /// mutual TLS (`tls-auth-clients yes`).
    pub fn client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> TlsConfig {
        self.client_cert_pem = Some(cert_pem.into());
        self.client_key_pem = Some(key_pem.into());
        self
    }

    /// Text given as a certificate must hold one: without this check, text with no PEM block
    /// would give an empty list of roots, and the failure would only show at the handshake.
    fn check_pem(&self) -> Result<(), ConfigError> {
        for (what, pem) in [
            ("ca_pem", &self.ca_pem),
            ("client certificate", &self.client_cert_pem),
        ] {
            if let Some(pem) = pem
                && !pem.windows(CERT_BEGIN.len()).any(|w| w == CERT_BEGIN)
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::Tls,
                    format!(
                        "the TLS {what} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: match (&self.client_cert_pem, &self.client_key_pem) {
                (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
                _ => None,
            },
            root_cert: self.ca_pem.clone(),
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<Vec<u8>>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("TlsConfig")
            .field("ca_pem", &shown(&self.ca_pem))
            .field("client_cert_pem", &shown(&self.client_cert_pem))
            .field("client_key_pem", &shown(&self.client_key_pem))
            .finish()
    }
}

const CERT_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// The L2 as configured on the builder.
#[derive(Clone)]
pub(crate) enum RedisTarget {
    /// A URL, with TLS settings for `rediss://`.
    Url(String, Option<TlsConfig>),
    /// A client built by the service (its own TLS and credentials).
    Client(redis::Client),
    /// The master named `master` of the group the `sentinels` monitor.
    Sentinel {
        master: String,
        sentinels: Vec<String>,
    },
    /// A Redis Cluster reached through these seed nodes.
    Cluster(Vec<String>),
}

/// `host:port` as a URL (`redis://host:port`); a URL is kept as it is.
pub(crate) fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
    }
}

impl RedisTarget {
    /// The redis-rs client to connect with. Fails on a URL that does not parse, and on TLS
    /// settings that cannot apply (PEM that does not parse, TLS settings with a `redis://` URL).
    pub(crate) fn client(&self) -> Result<redis::Client, Error> {
        match self {
            RedisTarget::Client(client) => Ok(client.clone()),
            RedisTarget::Sentinel { .. } | RedisTarget::Cluster(_) => Err(ConfigError::new(
                ConfigErrorKind::Redis,
                "Sentinel and Cluster are reached through several nodes, not one client",
            )
            .into()),
            RedisTarget::Url(url, None) => {
                redis::Client::open(url.as_str()).map_err(Error::RedisUrl)
            }
            RedisTarget::Url(url, Some(tls)) => {
                if !url.starts_with("rediss://") {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Tls,
                        format!(
                            "TLS settings (redis_tls) were given for `{}`: use a rediss:// URL",
                            redact_url(url)
                        ),
                    )
                    .into());
                }
                tls.check_pem()?;
                redis::Client::build_with_tls(url.as_str(), tls.certificates()).map_err(|e| {
                    ConfigError::new(
                        ConfigErrorKind::Tls,
                        format!("TLS settings for `{}` are unusable: {e}", redact_url(url)),
                    )
                    .into()
                })
            }
        }
    }
}

impl RedisTarget {
    /// The deployment to connect to. Fails on an address that does not parse, a Sentinel setting
    /// without a master name or sentinels, or a cluster without seed nodes.
    pub(crate) fn deployment(&self) -> Result<Deployment, Error> {
        let invalid = |what: String| Error::from(ConfigError::new(ConfigErrorKind::Redis, what));
        match self {
            RedisTarget::Url(..) | RedisTarget::Client(_) => Ok(Deployment::Single(self.client()?)),
            RedisTarget::Sentinel { master, sentinels } => {
                let urls: Vec<String> = sentinels.iter().map(|s| node_url(s)).collect();
                SentinelTarget::new(master, &urls, "redis://sentinel-master/")
                    .map(|target| Deployment::Sentinel(Arc::new(target)))
                    .map_err(|e| {
                        let shown: Vec<String> = urls.iter().map(|u| redact_url(u)).collect();
                        invalid(format!(
                            "Sentinel settings (master `{master}`, sentinels {shown:?}) are unusable: {e}"
                        ))
                    })
            }
            RedisTarget::Cluster(nodes) => {
                let urls: Vec<String> = nodes.iter().map(|n| node_url(n)).collect();
                let shown: Vec<String> = urls.iter().map(|u| redact_url(u)).collect();
                let unusable = |e: redis::RedisError| {
                    invalid(format!("cluster seed nodes {shown:?} are unusable: {e}"))
                };
                let Some(first) = urls.first() else {
                    return Err(invalid("redis_cluster needs at least one seed node".into()));
                };
                let seed = redis::IntoConnectionInfo::into_connection_info(first.as_str())
                    .map_err(unusable)?;
                // redis-rs waits at least 1.28 s before retrying a `TRYAGAIN` (a multi-key
                // command on a slot being migrated); a cache call's budget is far shorter, so
                // retries start at 2 ms and wait at most 100 ms.
                let client =
                    redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
                        .min_retry_wait(2)
                        .max_retry_wait(100)
                        .build()
                        .map_err(unusable)?;
                Ok(Deployment::Cluster(Box::new((client, seed))))
            }
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Url(url, tls) => f
                .debug_struct("Url")
                .field("url", &redact_url(url))
                .field("tls", tls)
                .finish(),
            RedisTarget::Client(client) => f
                .debug_tuple("Client")
                .field(client.get_connection_info().addr())
                .finish(),
            RedisTarget::Sentinel { master, sentinels } => f
                .debug_struct("Sentinel")
                .field("master", master)
                .field(
                    "sentinels",
                    &sentinels
                        .iter()
                        .map(|s| redact_url(&node_url(s)))
                        .collect::<Vec<_>>(),
                )
                .finish(),
            RedisTarget::Cluster(nodes) => f
                .debug_tuple("Cluster")
                .field(
                    &nodes
                        .iter()
                        .map(|n| redact_url(&node_url(n)))
                        .collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// Picks rustls's crypto provider (ring) for the process if none is installed yet, so that TLS
/// works even when another crate of the service enabled a second provider (then rustls cannot
/// choose by itself). A provider the service installed first is kept.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The build-time verdict on the first connection's failure: refused credentials (`WRONGPASS`,
/// `NOAUTH`, `NOPERM`) and failed TLS handshakes are configuration errors, reported at once
/// whatever `require_redis` says, since waiting for Redis to "come back" cannot fix them. `None`
/// for anything else (unreachable, timeout): the cache may start degraded.
pub(crate) fn configuration_failure(
    failure: &RedisFailure,
    info: &redis::ConnectionInfo,
) -> Option<ConfigError> {
    let error = failure.redis_error()?;
    let settings = info.redis_settings();
    let user = match settings.username() {
        Some(user) => format!("user `{user}`"),
        None if settings.password().is_some() => "the default user (password only)".to_owned(),
        None => "the default user (no credentials given)".to_owned(),
    };
    let code = error.code();
    let refused_credentials = error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, Some("WRONGPASS" | "NOAUTH"));
    if refused_credentials {
        return Some(ConfigError::new(
            ConfigErrorKind::Auth,
            format!(
                "Redis refused the credentials of {user} ({}): check the user name and password of \
                 the Redis URL",
                code.unwrap_or("authentication failed")
            ),
        ));
    }
    if code == Some("NOPERM")
        || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    {
        return Some(ConfigError::new(
            ConfigErrorKind::Auth,
            format!(
                "Redis accepted {user} but its ACL denies what the cache needs (NOPERM): grant it \
                 the cache's keys (`~<namespace>:*`) and commands (read, write, keyspace, scripting)"
            ),
        ));
    }
    if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
        && let Some(tls) = tls_error(error)
    {
        return Some(ConfigError::new(
            ConfigErrorKind::Tls,
            format!(
                "the TLS handshake with Redis at {} failed: {tls} (check the CA, the server's name \
                 in its certificate, and the client certificate if the server requires one)",
                info.addr()
            ),
        ));
    }
    None
}

/// The rustls error somewhere in `error`'s chain of sources. tokio-rustls reports it inside an
/// `io::Error`, which redis-rs keeps behind an `Arc` (its source is the `Arc` itself).
fn tls_error(error: &redis::RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        let e: &(dyn std::error::Error + 'static) = match e.downcast_ref::<Shared>() {
            Some(shared) => &**shared,
            None => e,
        };
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = e.source();
    }
    None
}

/// `url` with its password replaced by `***` (`redis://user:***@host:6379/0`), in the authority
/// and in a `pass=`/`password=` query parameter (`redis+unix:` URLs).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_owned(),
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k @ ("pass" | "password"), _)) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("redis://alice:s3cret@cache:6379/0"),
            "redis://alice:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://:s3cret@cache:6380/#insecure"),
            "rediss://:***@cache:6380/#insecure"
        );
        assert_eq!(redact_url("redis://cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(redact_url("redis://alice@cache"), "redis://alice@cache");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redact_url("a:p@ss"), "<not a URL>");
        // An `@` in the password: the last `@` ends the user info.
        assert_eq!(
            redact_url("redis://bob:p@ss@cache/"),
            "redis://bob:***@cache/"
        );
    }

    #[test]
    fn tls_settings_need_a_rediss_url() {
        let target = RedisTarget::Url("redis://cache/".into(), Some(TlsConfig::new()));
        match target.client() {
            Err(Error::Config(e)) => {
                assert_eq!(e.kind(), ConfigErrorKind::Tls);
                assert!(e.message().contains("rediss://"), "{e}");
            }
            other => panic!("expected a TLS configuration error, got {other:?}"),
        }
        let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        for tls in [
            TlsConfig::new().ca_pem("not a certificate"),
            TlsConfig::new().ca_pem(broken),
            TlsConfig::new().client_certificate("no certificate", "no key"),
        ] {
            let target = RedisTarget::Url("rediss://:pw@cache/".into(), Some(tls));
            match target.client() {
                Err(Error::Config(e)) => {
                    assert_eq!(e.kind(), ConfigErrorKind::Tls);
                    assert!(!e.message().contains("pw@"), "{e}");
                }
                other => panic!("expected a TLS configuration error, got {other:?}"),
            }
        }
    }
}
