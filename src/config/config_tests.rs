//! The settings as a whole: files, variables, and the checks across keys.

use super::testing::{env, load_str};
use super::*;

#[test]
fn shutdown_drain_from_file_and_env() {
    assert_eq!(Config::default().shutdown_drain_seconds, 0);
    let c = load_str("shutdown_drain_seconds = 15\n", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.shutdown_drain_seconds, 15);
    let c = Config::load(None, env(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "7")])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.shutdown_drain_seconds, 7);
    let e = Config::load(None, env(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "301")])).err().map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("shutdown_drain_seconds"));
}

#[test]
fn http_fallback_settings() {
    let c = Config::load(None, env(&[("SINEW_HTTP_PATH", "/fallback"), ("SINEW_HTTP_SESSION_TIMEOUT", "2")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.http_path.as_str(), c.http_session_timeout, c.http_heartbeat_interval), ("/fallback", 2, 25));
    for (var, value) in [
        ("SINEW_HTTP_PATH", "pusher"),
        ("SINEW_HTTP_PATH", "/pusher/"),
        ("SINEW_HTTP_PATH", "/"),
        ("SINEW_HTTP_PATH", "/{x}"),
        ("SINEW_HTTP_HEARTBEAT_INTERVAL", "30"),
        ("SINEW_HTTP_HEARTBEAT_INTERVAL", "0"),
        ("SINEW_HTTP_SESSION_TIMEOUT", "0"),
    ] {
        let e = Config::load(None, env(&[(var, value)])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(&var["SINEW_".len()..].to_ascii_lowercase()), "{var}={value}: {e}");
    }
}

#[test]
fn file_with_apps_and_errors() {
    let ok = load_str(
        "port = 7001\n[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\n[[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"sb\"\nmax_batch_size = 3\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.apps.len(), 2);
    assert_eq!(ok.apps[1].max_batch_size, 3);
    assert!(!ok.apps[0].client_events);

    let unknown = load_str("prot = 1\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(unknown.contains("prot"), "{unknown}");
    let unknown_app = load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\nclient_evnts=true\n", &[])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(unknown_app.contains("client_evnts"), "{unknown_app}");
    let bad_type = load_str("port = \"x\"\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(bad_type.contains("port"), "{bad_type}");
    let dup =
        load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"b\"\nkey=\"k\"\nsecret=\"s\"\n", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
    assert!(dup.contains("apps[1].key") && dup.contains("duplicate"), "{dup}");
    let missing = load_str("[[apps]]\nid=\"a\"\nkey=\"k\"\n", &[]).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(missing.contains("apps[0].secret"), "{missing}");
}

#[test]
fn adapter_settings() {
    let c = Config::load(None, env(&[("SINEW_ADAPTER", "redis"), ("SINEW_REDIS_URL", "redis://r:6380/2")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.adapter.as_str(), c.redis_url.as_str()), ("redis", "redis://r:6380/2"));
    assert_eq!(Config::load(None, Vec::new()).map(|c| c.adapter).ok().as_deref(), Some("local"));
    let err = |vars: &[(&str, &str)]| Config::load(None, env(vars)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(&[("SINEW_ADAPTER", "kafka")]).contains("adapter"));
    assert!(err(&[("SINEW_ADAPTER", "nats")]).contains("nats_url"));
    assert!(err(&[("SINEW_ADAPTER", "nats"), ("SINEW_NATS_URL", "http://x y")]).contains("nats_url"));
    let c = Config::load(None, env(&[("SINEW_ADAPTER", "nats"), ("SINEW_NATS_URL", "nats://n:4222")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((c.adapter.as_str(), c.nats_url.as_str()), ("nats", "nats://n:4222"));
    let c = Config::load(
        None,
        env(&[
            ("SINEW_ADAPTER", "redis"),
            ("SINEW_REDIS_CLUSTER", "true"),
            ("SINEW_REDIS_URL", "redis://127.0.0.1:7000,redis://127.0.0.1:7001"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(c.redis_topology(), Ok(Topology::Cluster(seeds)) if seeds.len() == 2));
    let c = Config::load(
        None,
        env(&[
            ("SINEW_ADAPTER", "redis"),
            ("SINEW_REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380"),
            ("SINEW_REDIS_MASTER_NAME", "mymaster"),
            ("SINEW_REDIS_CLUSTER", ""),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(c.redis_topology(), Ok(Topology::Sentinel(s)) if s.sentinels.len() == 2 && s.master == "mymaster")
    );
    assert!(err(&[("SINEW_ADAPTER", "redis"), ("SINEW_REDIS_URL", "http://x")]).contains("redis_url"));
    assert!(err(&[("SINEW_CLUSTER_NODE_TIMEOUT_SECONDS", "1")]).contains("cluster_node_timeout_seconds"));
}

#[test]
fn history_channels_are_prefixes_and_a_star_is_every_channel() {
    let c = Config::load(None, env(&[("SINEW_APP_HISTORY_CHANNELS", "private-, presence-")]))
        .unwrap_or_else(|e| panic!("{e}"));
    let app = &c.apps[0];
    assert!(app.history_for("private-a") && app.history_for("presence-b") && !app.history_for("news"));
    assert!(!AppConfig::development().history_for("private-a"), "off by default");
    let every = AppConfig { history_channels: vec!["*".into()], ..AppConfig::development() };
    assert!(every.history_for("news"));
    let e = Config::load(None, env(&[("SINEW_APP_HISTORY_SIZE", "0")])).err().map(|e| e.to_string());
    assert!(e.unwrap_or_default().contains("history_size"));
}
