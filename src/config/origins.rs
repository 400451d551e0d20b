//! Which browser origins an app accepts (`allowed_origins`): the check of each entry at load, and
//! the one rule that matches a request's `Origin` header against the entries, used by the
//! WebSocket and HTTP fallback connections and by the auth endpoints alike.
//!
//! An entry is `*` (any origin), `scheme://host[:port]`, `scheme://*.host[:port]` (any subdomain
//! of `host`, at any depth, but not `host` itself), or either of the last two without `scheme://`
//! (then an `http` or an `https` origin matches). Scheme and host compare without regard to ASCII
//! case; a port equal to the scheme's default (80 for http, 443 for https) is the same as no port,
//! as browsers leave the default port out of `Origin`.

use super::AppConfig;

/// An entry or an origin, split: scheme (`None` for an entry that names none), whether the host
/// is a `*.` pattern, host, and the port when one is written.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    scheme: Option<&'a str>,
    wildcard: bool,
    host: &'a str,
    port: Option<u16>,
}

impl AppConfig {
    /// Whether a page at `origin` (an `Origin` header's value) is listed in `allowed_origins`,
    /// by `*`, by name or by a `*.` pattern.
    pub fn origin_listed(&self, origin: &str) -> bool {
        listed(&self.allowed_origins, origin, true)
    }

    /// Whether `origin` is listed by an entry without any wildcard (neither `*` nor `*.`): what
    /// sharing credentials with a page needs.
    pub fn origin_named(&self, origin: &str) -> bool {
        listed(&self.allowed_origins, origin, false)
    }

    /// Whether a connection (WebSocket or HTTP fallback) whose request carried `origin` may open:
    /// always when the list is empty or the request has no `Origin` (a client that is not a
    /// browser page), otherwise when the origin is listed.
    pub fn connection_origin_allowed(&self, origin: Option<&str>) -> bool {
        self.allowed_origins.is_empty() || origin.is_none_or(|o| self.origin_listed(o))
    }
}

/// Whether an entry of `entries` matches `origin`; with `wildcards` false, only entries without
/// `*` count. An origin that is not `scheme://host[:port]` (such as `null`) matches only `*`.
fn listed(entries: &[String], origin: &str, wildcards: bool) -> bool {
    let origin = parse(origin).ok().filter(|o| o.scheme.is_some() && !o.wildcard);
    entries.iter().any(|entry| {
        if entry == "*" {
            return wildcards;
        }
        let (Some(origin), Ok(entry)) = (&origin, parse(entry)) else { return false };
        (wildcards || !entry.wildcard) && matches(&entry, origin)
    })
}

/// Checks one `allowed_origins` entry; the error says what is wrong with it.
pub(super) fn check_entry(entry: &str) -> Result<(), &'static str> {
    if entry == "*" {
        return Ok(());
    }
    if entry.eq_ignore_ascii_case("null") {
        return Err("the `null` origin (sandboxed frames, local files) can only be allowed by \"*\"");
    }
    parse(entry).map(|_| ())
}

fn matches(entry: &Parts<'_>, origin: &Parts<'_>) -> bool {
    let Some(scheme) = origin.scheme else { return false };
    let scheme_ok = match entry.scheme {
        Some(s) => s.eq_ignore_ascii_case(scheme),
        None => scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"),
    };
    let default = default_port(scheme);
    let host_ok = if entry.wildcard {
        is_subdomain(origin.host, entry.host)
    } else {
        origin.host.eq_ignore_ascii_case(entry.host)
    };
    scheme_ok && host_ok && entry.port.or(default) == origin.port.or(default)
}

/// Whether `host` is a subdomain of `parent` (`a.example.com` and `a.b.example.com` of
/// `example.com`; not `example.com` itself, nor `evilexample.com`).
fn is_subdomain(host: &str, parent: &str) -> bool {
    let Some(cut) = host.len().checked_sub(parent.len() + 1).filter(|&n| n > 0) else { return false };
    // Both are ASCII (checked by `parse`), so `cut` is a character boundary.
    let (sub, tail) = host.split_at(cut);
    tail.strip_prefix('.').is_some_and(|t| t.eq_ignore_ascii_case(parent)) && !sub.ends_with('.')
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

/// Splits `[scheme://][*.]host[:port]`, refusing anything else.
fn parse(text: &str) -> Result<Parts<'_>, &'static str> {
    if text.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("may not contain spaces");
    }
    if !text.is_ascii() {
        return Err("must be ASCII (write an internationalised domain name in its xn-- form)");
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, text),
    };
    let (wildcard, rest) = match rest.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if scheme.is_some_and(|s| s.contains('*')) || rest.contains('*') {
        return Err("may only use `*` alone or as a leading `*.` label");
    }
    if scheme.is_some_and(|s| !valid_scheme(s)) {
        return Err("has an invalid scheme");
    }
    if rest.contains('/') {
        return Err("may not have a path (not even a trailing `/`)");
    }
    if rest.contains(['?', '#', '@', '\\']) {
        return Err("must be scheme://host[:port] (no query, fragment or user)");
    }
    let (host, port) = split_port(rest)?;
    if host.is_empty() {
        return Err("has no host");
    }
    if !valid_host(host) || (wildcard && host.starts_with('[')) {
        return Err("has an invalid host");
    }
    Ok(Parts { scheme, wildcard, host, port })
}

/// `host[:port]` (the host possibly a bracketed IPv6 address) into host and port.
fn split_port(s: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or("has an invalid host")? + 1;
        match &s[end..] {
            "" => (&s[..end], None),
            after => (&s[..end], Some(after.strip_prefix(':').ok_or("has an invalid host")?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if p.len() <= 5 && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&n| n > 0).ok_or("has an invalid port")?)
        }
        Some(_) => return Err("has an invalid port"),
    };
    Ok((host, port))
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn valid_scheme(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A domain name (letters, digits, `-`, `_`, dots between labels) or a bracketed IPv6 address.
fn valid_host(h: &str) -> bool {
    match h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(ip) => !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
        None => {
            !h.starts_with('.')
                && !h.contains("..")
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AppConfig, check_entry};

    fn app(entries: &[&str]) -> AppConfig {
        for e in entries {
            assert_eq!(check_entry(e), Ok(()), "{e}");
        }
        AppConfig { allowed_origins: entries.iter().map(|e| e.to_string()).collect(), ..AppConfig::default() }
    }

    #[test]
    fn exact_entries_match_the_same_origin_in_any_case() {
        let a = app(&["https://app.example.com", "http://localhost:3000"]);
        for yes in ["https://app.example.com", "HTTPS://APP.Example.COM", "https://app.example.com:443"] {
            assert!(a.origin_listed(yes), "{yes}");
            assert!(a.origin_named(yes), "{yes}");
        }
        assert!(a.origin_listed("http://localhost:3000"));
        for no in [
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.net",
            "https://evil.net/https://app.example.com",
            "https://sub.app.example.com",
            "https://app.example.co",
            "http://localhost",
            "http://localhost:30000",
            "null",
            "",
            "https://app.example.com/",
            " https://app.example.com",
        ] {
            assert!(!a.origin_listed(no), "{no:?}");
        }
    }

    #[test]
    fn subdomain_patterns_match_subdomains_only() {
        let a = app(&["https://*.example.com"]);
        for yes in ["https://a.example.com", "https://a.b.example.com", "https://A.EXAMPLE.com"] {
            assert!(a.origin_listed(yes), "{yes}");
            assert!(!a.origin_named(yes), "a pattern does not name {yes}");
        }
        for no in [
            "https://example.com",
            "https://evilexample.com",
            "https://a.evilexample.com",
            "https://example.com.evil.net",
            "https://a.example.com.evil.net",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://.example.com",
            "https://a..example.com",
            "null",
        ] {
            assert!(!a.origin_listed(no), "{no}");
        }
        let ported = app(&["http://*.example.com:8080"]);
        assert!(ported.origin_listed("http://a.example.com:8080"));
        assert!(!ported.origin_listed("http://a.example.com"));
        assert!(!ported.origin_listed("http://a.example.com:8081"));
    }

    #[test]
    fn entries_without_a_scheme_match_http_and_https() {
        let a = app(&["example.com", "*.example.org", "localhost:8080"]);
        for yes in [
            "https://example.com",
            "http://example.com",
            "http://example.com:80",
            "https://x.example.org",
            "http://x.y.example.org",
            "http://localhost:8080",
            "https://localhost:8080",
        ] {
            assert!(a.origin_listed(yes), "{yes}");
        }
        for no in [
            "wss://example.com",
            "chrome-extension://example.com",
            "https://example.com:8443",
            "https://example.org",
            "https://x.example.com",
            "http://localhost",
        ] {
            assert!(!a.origin_listed(no), "{no}");
        }
        assert!(a.origin_named("http://example.com"));
        assert!(!a.origin_named("http://x.example.org"));
    }

    #[test]
    fn star_matches_everything_but_names_nothing() {
        let a = app(&["*"]);
        for o in ["https://a.example", "null", "", "not an origin"] {
            assert!(a.origin_listed(o), "{o:?}");
            assert!(!a.origin_named(o), "{o:?}");
        }
    }

    #[test]
    fn other_schemes_and_addresses() {
        let a = app(&["capacitor://localhost", "http://[::1]:6001", "http://127.0.0.1:5173"]);
        assert!(a.origin_listed("capacitor://localhost"));
        assert!(!a.origin_listed("capacitor://localhost:1"));
        assert!(a.origin_listed("http://[::1]:6001"));
        assert!(!a.origin_listed("http://[::1]"));
        assert!(a.origin_listed("http://127.0.0.1:5173"));
        assert!(!a.origin_listed("http://127.0.0.2:5173"));
    }

    #[test]
    fn connections_check_only_browser_requests_against_a_non_empty_list() {
        let open = app(&[]);
        assert!(open.connection_origin_allowed(Some("https://anything.example")));
        assert!(open.connection_origin_allowed(None));
        let a = app(&["https://app.example.com"]);
        assert!(a.connection_origin_allowed(None));
        assert!(a.connection_origin_allowed(Some("https://app.example.com")));
        assert!(!a.connection_origin_allowed(Some("https://evil.example")));
        assert!(!a.connection_origin_allowed(Some("null")));
    }

    #[test]
    fn invalid_entries_are_refused() {
        for (entry, why) in [
            ("https://app.example.com/", "path"),
            ("https://app.example.com/app", "path"),
            ("app.example.com/", "path"),
            ("https://app.example.com ", "spaces"),
            ("https://app example.com", "spaces"),
            ("https://*", "`*`"),
            ("*.*.example.com", "`*`"),
            ("https://a.*.example.com", "`*`"),
            ("https://*example.com", "`*`"),
            ("*://example.com", "`*`"),
            ("**", "`*`"),
            ("https://example.*", "`*`"),
            ("null", "null"),
            ("NULL", "null"),
            ("https://", "no host"),
            ("*.", "no host"),
            ("https://:443", "no host"),
            ("https://example.com:", "port"),
            ("https://example.com:0", "port"),
            ("https://example.com:65536", "port"),
            ("https://example.com:80:80", "port"),
            ("https://example.com:http", "port"),
            ("1http://example.com", "scheme"),
            ("://example.com", "scheme"),
            ("https://user@example.com", "no query"),
            ("https://example.com?x", "no query"),
            ("https://exa_mple.com\u{e9}", "ASCII"),
            ("https://.example.com", "invalid host"),
            ("https://a..example.com", "invalid host"),
            ("https://*.[::1]", "invalid host"),
            ("https://[::1", "invalid host"),
            ("https://[::1]x", "invalid host"),
        ] {
            match check_entry(entry) {
                Ok(()) => panic!("{entry:?} accepted"),
                Err(e) => assert!(e.contains(why), "{entry:?}: {e}"),
            }
        }
        for ok in ["*", "https://APP.example.com", "example.com:8080", "*.example.com", "http://[::1]", "app://x"] {
            assert_eq!(check_entry(ok), Ok(()), "{ok}");
        }
    }
}
