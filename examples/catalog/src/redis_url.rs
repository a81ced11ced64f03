//! Redis URLs as the service shows and checks them: with the password replaced
//! ([`redact_url`], [`Redacted`]) wherever a URL may be printed (`Debug`, logs, errors), the
//! user named without the secret ([`redis_user`]), and a plain-words verdict on a URL that cannot
//! work ([`redis_url_problem`]) instead of the client's "InvalidClientConfig".
//!
//! Owns the text of URLs only; never connects.

use std::fmt;

/// A URL shown with its password replaced ([`redact_url`]); `Debug` and `Display` alike.
pub struct Redacted(String);

impl Redacted {
    pub fn url(url: &str) -> Redacted {
        Redacted(redact_url(url))
    }

    /// Each of `urls` redacted (Sentinel or Cluster node lists).
    pub fn urls(urls: &[String]) -> Vec<Redacted> {
        urls.iter().map(|u| Redacted::url(u)).collect()
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `url` with its password (`redis://user:secret@host/` and the `pass`/`password` query
/// parameters of `redis+unix:///path?pass=secret`) replaced by `***`; a URL that does not parse
/// is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<a URL that does not parse, not shown>".to_owned();
    };
    if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
        return "<a URL with a password, not shown>".to_owned();
    }
    if parsed
        .query_pairs()
        .any(|(k, _)| k == "pass" || k == "password")
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "pass" || k == "password" {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `set_password` percent-encodes the stars.
    parsed.to_string().replace("%2A%2A%2A", "***")
}

/// The user name of a Redis URL (`default`, Redis's, when it names none).
/// What is wrong with a Redis URL, in words (the password never shown), or `None` if it is one:
/// `redis://` or `rediss://` with a host, an optional port and an optional database number, or
/// `redis+unix:`/`unix:` with a socket path.
pub fn redis_url_problem(url: &str) -> Option<String> {
    const EXPECTED: &str = "expected redis://[user:password@]host[:port][/db], rediss://... for \
                            TLS, or unix:///path/to/socket";
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Some(format!(
                "REDIS_URL does not parse as a URL ({e}): {EXPECTED}"
            ));
        }
    };
    let shown = redact_url(url);
    let problem = match parsed.scheme() {
        "redis" | "rediss" => {
            if parsed.host_str().is_none_or(str::is_empty) {
                Some("it names no host".to_owned())
            } else {
                let db = parsed.path().trim_start_matches('/');
                (!db.is_empty() && db.parse::<u32>().is_err())
                    .then(|| format!("its path `/{db}` is not a database number"))
            }
        }
        "redis+unix" | "unix" => parsed
            .path()
            .is_empty()
            .then(|| "it names no socket path".to_owned()),
        other => Some(format!("its scheme `{other}` is not a Redis scheme")),
    };
    problem.map(|p| format!("REDIS_URL {shown} is not a Redis URL: {p}; {EXPECTED}"))
}

pub fn redis_user(url: &str) -> String {
    let parsed = url::Url::parse(url).ok();
    let from_authority = parsed
        .as_ref()
        .map(|u| u.username().to_owned())
        .filter(|u| !u.is_empty());
    let from_query = parsed.as_ref().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "user")
            .map(|(_, v)| v.into_owned())
    });
    from_authority
        .or(from_query)
        .unwrap_or_else(|| "default".to_owned())
}
