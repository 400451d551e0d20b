//! Where the cluster's Redis is: one server (`redis://`, `rediss://`), the master that a set of
//! Sentinels names (`redis+sentinel://`, `rediss+sentinel://`, or `redis_sentinels` with
//! `redis_master_name`), followed through failovers, or a Redis Cluster (`redis_cluster = true`,
//! `redis_url` then a comma-separated list of seed nodes).
//!
//! The Sentinel URL: `redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]`
//! (port 26379 when left out). The user and password are the master's (Redis ACLs); Sentinels that
//! require a password of their own get `redis_sentinel_password`. `rediss+sentinel://` speaks TLS to
//! the Sentinels and to the master.

use redis::{ConnectionAddr, IntoConnectionInfo};

/// The Sentinel port when an address leaves it out.
const SENTINEL_PORT: u16 = 26379;

/// The Redis the adapter talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server, by URL.
    Standalone(String),
    /// The master named by Sentinels.
    Sentinel(SentinelSettings),
    /// A Redis Cluster, found from these seed node URLs.
    Cluster(Vec<String>),
}

/// How to find and reach the master through Sentinels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// Sentinel addresses.
    pub sentinels: Vec<(String, u16)>,
    /// The name the Sentinels monitor the master under.
    pub master: String,
    /// TLS to the Sentinels and the master.
    pub tls: bool,
    /// The master's ACL user.
    pub username: Option<String>,
    /// The master's password.
    pub password: Option<String>,
    /// The master's database.
    pub db: i64,
    /// The Sentinels' own password (`requirepass` in sentinel.conf).
    pub sentinel_password: Option<String>,
}

impl Topology {
    /// Reads the adapter settings: `url` (`redis_url`), and `sentinels` with `master` when the
    /// Sentinels are listed apart (then `url` gives only the master's user, password, database and
    /// TLS; its host is not used).
    pub fn from_settings(
        url: &str,
        cluster: bool,
        sentinels: &[String],
        master: &str,
        sentinel_password: &str,
    ) -> Result<Topology, String> {
        if cluster {
            return parse_cluster_seeds(url, sentinels);
        }
        let sentinel_password = (!sentinel_password.is_empty()).then(|| sentinel_password.to_string());
        if let Some((tls, rest)) = sentinel_scheme(url) {
            if !sentinels.is_empty() {
                return Err("list the Sentinels in redis_url or in redis_sentinels, not both".into());
            }
            return parse_sentinel_url(tls, rest, sentinel_password);
        }
        let info = url.into_connection_info().map_err(|e| format!("is not a valid redis:// or rediss:// URL: {e}"))?;
        if sentinels.is_empty() {
            return Ok(Topology::Standalone(url.to_string()));
        }
        if master.is_empty() {
            return Err("redis_sentinels needs redis_master_name".into());
        }
        let sentinels = sentinels.iter().map(|s| parse_addr(s)).collect::<Result<Vec<_>, _>>()?;
        let redis = info.redis_settings();
        Ok(Topology::Sentinel(SentinelSettings {
            sentinels,
            master: master.to_string(),
            tls: matches!(info.addr(), ConnectionAddr::TcpTls { .. }),
            username: redis.username().map(str::to_string),
            password: redis.password().map(str::to_string),
            db: redis.db(),
            sentinel_password,
        }))
    }
}

/// The seed nodes of a Redis Cluster: `redis://a:7000,redis://b:7001` (a seed without a scheme
/// takes the first one's scheme and credentials).
fn parse_cluster_seeds(url: &str, sentinels: &[String]) -> Result<Topology, String> {
    if !sentinels.is_empty() || sentinel_scheme(url).is_some() {
        return Err("a Redis Cluster has no Sentinels: use redis_cluster or the Sentinel settings, not both".into());
    }
    let mut seeds: Vec<String> = Vec::new();
    for seed in url.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let seed = match (seed.contains("://"), seeds.first()) {
            (false, Some(first)) => with_host_of(first, seed)?,
            (false, None) => format!("redis://{seed}"),
            (true, _) => seed.to_string(),
        };
        seed.as_str()
            .into_connection_info()
            .map_err(|e| format!("`{seed}` is not a valid redis:// or rediss:// URL: {e}"))?;
        seeds.push(seed);
    }
    if seeds.is_empty() {
        return Err("a Redis Cluster needs at least one seed node URL".into());
    }
    Ok(Topology::Cluster(seeds))
}

/// `first` (a URL) with its host and port replaced by `addr` (`host:port`).
fn with_host_of(first: &str, addr: &str) -> Result<String, String> {
    let (scheme, rest) = first.split_once("://").ok_or_else(|| format!("`{first}` has no scheme"))?;
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let path = hostpart.find('/').map_or("", |i| &hostpart[i..]);
    Ok(match userinfo {
        Some(u) => format!("{scheme}://{u}@{addr}{path}"),
        None => format!("{scheme}://{addr}{path}"),
    })
}

/// `Some((tls, rest))` for a Sentinel URL.
fn sentinel_scheme(url: &str) -> Option<(bool, &str)> {
    url.strip_prefix("redis+sentinel://")
        .map(|rest| (false, rest))
        .or_else(|| url.strip_prefix("rediss+sentinel://").map(|rest| (true, rest)))
}

fn parse_sentinel_url(tls: bool, rest: &str, sentinel_password: Option<String>) -> Result<Topology, String> {
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or("a Sentinel URL names its master: .../master[/db]")?;
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let master = segments.next().ok_or("a Sentinel URL names its master: .../master[/db]")?;
    let db = match segments.next() {
        Some(db) => db.parse().map_err(|_| format!("`{db}` is not a database number"))?,
        None => 0,
    };
    if segments.next().is_some() {
        return Err("a Sentinel URL ends with /master or /master/db".into());
    }
    let sentinels = hosts.split(',').map(parse_addr).collect::<Result<Vec<_>, _>>()?;
    let decode = |s: &str| percent_decode(s);
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => ((!user.is_empty()).then(|| decode(user)), Some(decode(pass))),
            None => ((!u.is_empty()).then(|| decode(u)), None),
        },
    };
    Ok(Topology::Sentinel(SentinelSettings {
        sentinels,
        master: decode(master),
        tls,
        username,
        password,
        db,
        sentinel_password,
    }))
}

/// `host[:port]`, `[v6]:port`.
fn parse_addr(s: &str) -> Result<(String, u16), String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a host[:port] address");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => SENTINEL_PORT,
    };
    Ok((host.to_string(), port))
}

/// `%XX` escapes in a URL's user, password or master name.
fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_seeds() {
        let t = Topology::from_settings("redis://127.0.0.1:7000, redis://127.0.0.1:7001", true, &[], "", "");
        assert_eq!(t, Ok(Topology::Cluster(vec!["redis://127.0.0.1:7000".into(), "redis://127.0.0.1:7001".into()])));
        let t = Topology::from_settings("rediss://u:p@h1:7000/0,h2:7001", true, &[], "", "");
        assert_eq!(t, Ok(Topology::Cluster(vec!["rediss://u:p@h1:7000/0".into(), "rediss://u:p@h2:7001/0".into()])));
        assert!(Topology::from_settings("", true, &[], "", "").is_err());
        assert!(Topology::from_settings("redis+sentinel://h/m", true, &[], "", "").is_err());
        assert!(Topology::from_settings("redis://h", true, &["s:1".into()], "m", "").is_err());
        assert!(Topology::from_settings("redis://h:notaport", true, &[], "", "").is_err());
    }

    fn sentinel(t: Result<Topology, String>) -> SentinelSettings {
        match t {
            Ok(Topology::Sentinel(s)) => s,
            other => panic!("expected Sentinel settings: {other:?}"),
        }
    }

    #[test]
    fn standalone_urls_stay_as_they_are() {
        let t = Topology::from_settings("redis://u:p@127.0.0.1:6380/2", false, &[], "", "");
        assert_eq!(t, Ok(Topology::Standalone("redis://u:p@127.0.0.1:6380/2".into())));
        assert!(Topology::from_settings("http://x", false, &[], "", "").is_err());
    }

    #[test]
    fn sentinel_urls() {
        let s = sentinel(Topology::from_settings(
            "redis+sentinel://app:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]:26381/main/3",
            false,
            &[],
            "",
            "sp",
        ));
        assert_eq!(s.sentinels, vec![("10.0.0.1".into(), 26379), ("10.0.0.2".into(), 26380), ("::1".into(), 26381)]);
        assert_eq!((s.master.as_str(), s.db, s.tls), ("main", 3, false));
        assert_eq!((s.username.as_deref(), s.password.as_deref()), (Some("app"), Some("s@cret")));
        assert_eq!(s.sentinel_password.as_deref(), Some("sp"));
        let s = sentinel(Topology::from_settings("rediss+sentinel://:pw@h/m", false, &[], "", ""));
        assert_eq!((s.tls, s.username, s.password.as_deref(), s.db), (true, None, Some("pw"), 0));
        for bad in ["redis+sentinel://h1,h2", "redis+sentinel://h/", "redis+sentinel://h:x/m", "redis+sentinel://h/m/x"]
        {
            assert!(Topology::from_settings(bad, false, &[], "", "").is_err(), "{bad}");
        }
    }

    #[test]
    fn sentinels_listed_apart() {
        let list = ["127.0.0.1:5000".to_string(), "127.0.0.1".to_string()];
        let s = sentinel(Topology::from_settings("rediss://user:pw@ignored:1/4", false, &list, "mymaster", ""));
        assert_eq!(s.sentinels, vec![("127.0.0.1".into(), 5000), ("127.0.0.1".into(), 26379)]);
        assert_eq!((s.master.as_str(), s.tls, s.db), ("mymaster", true, 4));
        assert_eq!((s.username.as_deref(), s.password.as_deref()), (Some("user"), Some("pw")));
        assert!(Topology::from_settings("redis://x", false, &list, "", "").is_err(), "a master name is needed");
        assert!(Topology::from_settings("redis+sentinel://h/m", false, &list, "m", "").is_err(), "not both");
    }
}
