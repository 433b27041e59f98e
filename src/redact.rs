//! Hiding credentials in URLs before they reach a message, a plan or a log.
//! Depends on nothing else in the crate: the error type and the value
//! parsers both use it.

/// Replaces the password of `scheme://user:password@host/...` by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let auth_end = rest.find('/').unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// A URL that is a secret as a whole (a key's pre-signed URL): its password
/// and its query (the token) are hidden, host and path are kept so that an
/// operator can tell which server failed.
pub fn redact_secret_url(url: &str) -> String {
    let u = redact_url(url);
    match u.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => u,
    }
}
