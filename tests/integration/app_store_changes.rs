//! Changes to the apps table reach every running node without a restart: on two nodes sharing the
//! machine's PostgreSQL (announced, within a second) or MariaDB (`updated_at` polled every
//! second here), a rotated secret keeps the old one signing for the grace period and no longer,
//! a lowered `max_connections` holds for new connections, a disabled app's clients are closed with
//! 4003 and a deleted one's with 4001. soketi's table, which tracks no changes, is read again every
//! `app_store_reload_seconds`. With the database cut off, the apps in memory keep serving.

use crate::cluster_support::proxy::Partition;
use crate::common::{Client, Next};
use crate::db_support::{Db, TestDb, insert, rest, soketi_table};
use crate::process_support::SinewProcess;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tries `ok` every 50 ms until it holds; the time it took, or a panic after `limit`.
async fn within<F: Future<Output = bool>>(limit: Duration, what: &str, mut ok: impl FnMut() -> F) -> Duration {
    let start = Instant::now();
    loop {
        if ok().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The close code of a new connection's first answer (`None`: it was accepted).
async fn refusal(addr: SocketAddr, key: &str) -> Option<u64> {
    let mut c = Client::connect(addr, key).await;
    let first = c.recv().await;
    if first["event"] == "pusher:connection_established" { None } else { first["data"]["code"].as_u64() }
}

/// Reads `client` until the server closes it; the `pusher:error` code sent before, and the close code.
async fn closed(client: &mut Client) -> (Option<u64>, Option<u16>) {
    let mut error = None;
    loop {
        match client.next_within(Duration::from_secs(10)).await {
            Next::Event(v) if v["event"] == "pusher:error" => error = v["data"]["code"].as_u64(),
            Next::Event(_) => {}
            Next::Closed(code) => return (error, code),
            Next::Nothing => panic!("the connection was not closed"),
        }
    }
}

fn secret_of(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("secret=")).unwrap_or_else(|| panic!("no secret in {out}")).to_string()
}

async fn changes_reach_every_node(db: Db) {
    let t = TestDb::create(db).await;
    t.cli(&["db", "migrate"]);
    let old = secret_of(&t.cli(&["apps", "create", "--set", "id=live", "--set", "key=live-key"]));
    let url = t.url();
    let env = [
        ("SINEW_APP_STORE", t.store()),
        ("SINEW_DATABASE_URL", url.as_str()),
        ("SINEW_APP_STORE_POLL_SECONDS", "1"),
        ("SINEW_SECRET_GRACE_SECONDS", "4"),
    ];
    let (a, b) = (SinewProcess::spawn(&env).await, SinewProcess::spawn(&env).await);
    // PostgreSQL announces at once; MariaDB is seen at the next poll (1 s here).
    let bound = if db == Db::Postgres { Duration::from_secs(2) } else { Duration::from_secs(4) };
    let status =
        |addr, secret: String| async move { rest(addr, "live", "live-key", &secret).trigger("c", "e", "1").await.0 };

    // A rotated secret: the new one signs on both nodes, the old one too until the grace ends.
    let new = secret_of(&t.cli(&["apps", "rotate", "live"]));
    let took =
        within(bound, "the new secret reaches node b", || async { status(b.addr, new.clone()).await == 200 }).await;
    eprintln!("{db:?}: rotation seen on the other node after {took:?}");
    within(bound, "the new secret reaches node a", || async { status(a.addr, new.clone()).await == 200 }).await;
    assert_eq!(status(a.addr, old.clone()).await, 200, "the old secret signs during the grace period");
    assert_eq!(status(b.addr, old.clone()).await, 200, "the old secret signs during the grace period");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status(a.addr, old.clone()).await, 401, "the old secret no longer signs after the grace period");
    assert_eq!(status(b.addr, old.clone()).await, 401);
    assert_eq!(status(b.addr, new.clone()).await, 200);

    // A lower max_connections holds for new connections; open ones stay.
    let mut open = Client::connect(b.addr, "live-key").await;
    assert_eq!(open.recv().await["event"], "pusher:connection_established");
    t.cli(&["apps", "update", "live", "--set", "max_connections=1"]);
    within(bound, "the lower limit reaches node b", || async { refusal(b.addr, "live-key").await == Some(4004) }).await;
    t.cli(&["apps", "update", "live", "--set", "max_connections=0"]);
    within(bound, "the limit lifted on node b", || async { refusal(b.addr, "live-key").await.is_none() }).await;

    // Disabled: the clients on both nodes are closed with 4003, new ones refused with it.
    let mut on_a = Client::connect(a.addr, "live-key").await;
    assert_eq!(on_a.recv().await["event"], "pusher:connection_established");
    let disabled_at = Instant::now();
    t.cli(&["apps", "disable", "live"]);
    assert_eq!(closed(&mut on_a).await, (Some(4003), Some(4003)));
    assert_eq!(closed(&mut open).await, (Some(4003), Some(4003)));
    let took = disabled_at.elapsed();
    eprintln!("{db:?}: clients of the disabled app closed after {took:?}");
    assert!(took < bound, "clients closed after {took:?}");
    assert_eq!(refusal(a.addr, "live-key").await, Some(4003));
    assert_eq!(refusal(b.addr, "live-key").await, Some(4003));

    // Enabled again, then deleted: closed with 4001 (pusher-js does not retry), unknown after.
    t.cli(&["apps", "enable", "live"]);
    within(bound, "enabled again on node a", || async { refusal(a.addr, "live-key").await.is_none() }).await;
    let mut last = Client::connect(a.addr, "live-key").await;
    assert_eq!(last.recv().await["event"], "pusher:connection_established");
    t.cli(&["apps", "delete", "live"]);
    assert_eq!(closed(&mut last).await, (Some(4001), Some(4001)));
    within(bound, "deleted on node b", || async { refusal(b.addr, "live-key").await == Some(4001) }).await;

    // A key freed by a deletion is taken by an app made right after: when one read sees both (on
    // MariaDB, the read a REST call for the new app makes before the next poll), the deletion is
    // served first, so the new app is found.
    t.cli(&["apps", "create", "--set", "id=gone", "--set", "key=reused-key"]);
    within(bound, "the first app on node a", || async { refusal(a.addr, "reused-key").await.is_none() }).await;
    t.cli(&["apps", "delete", "gone"]);
    let secret = secret_of(&t.cli(&["apps", "create", "--set", "id=second", "--set", "key=reused-key"]));
    let published = rest(a.addr, "second", "reused-key", &secret).trigger("reuse", "hi", "2").await.0;
    assert_eq!(published, 200, "the new app is found at its first REST call");
    within(bound, "the reused key connects", || async { refusal(a.addr, "reused-key").await.is_none() }).await;
    drop((a, b));
    t.drop_db().await;
}

/// soketi's table has no `updated_at`: a change made by hand is seen at the next full read.
async fn an_untracked_table_is_read_again_every_reload(db: Db) {
    let t = TestDb::create(db).await;
    t.run(&[soketi_table(db), &insert(db, "s1", "s1-key", "s1-secret", 1, -1)]).await;
    let url = t.url();
    let env =
        [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str()), ("SINEW_APP_STORE_RELOAD_SECONDS", "1")];
    let node = SinewProcess::spawn(&env).await;
    let mut client = Client::connect(node.addr, "s1-key").await;
    assert_eq!(client.recv().await["event"], "pusher:connection_established");
    t.run(&["UPDATE apps SET enabled = 0 WHERE id = 's1'"]).await;
    assert_eq!(closed(&mut client).await, (Some(4003), Some(4003)));
    drop(node);
    t.drop_db().await;
}

/// The database cut off (no answer, connections not closed): connected clients keep receiving,
/// a known app still connects, an unknown key is asked to come back (4100), `/ready` says the store
/// is unreachable and stays 200; once healed, a change made meanwhile arrives.
async fn the_database_cut_off_leaves_the_apps_in_memory_serving(db: Db) {
    let t = TestDb::create(db).await;
    t.cli(&["db", "migrate"]);
    let secret = secret_of(&t.cli(&["apps", "create", "--set", "id=kept", "--set", "key=kept-key"]));
    let port = if db == Db::Postgres { 5432 } else { 3306 };
    let proxy = Partition::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let url = t.url().replace(&format!("127.0.0.1:{port}"), &proxy.addr.to_string());
    let env = [
        ("SINEW_APP_STORE", t.store()),
        ("SINEW_DATABASE_URL", url.as_str()),
        ("SINEW_APP_STORE_RELOAD_SECONDS", "1"),
        ("SINEW_APP_STORE_POLL_SECONDS", "1"),
    ];
    let node = SinewProcess::spawn(&env).await;
    let mut client = Client::connect(node.addr, "kept-key").await;
    assert_eq!(client.recv().await["event"], "pusher:connection_established");
    client.subscribe("news").await;
    let ready = |addr| async move {
        let r = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap()["app_store"].clone())
    };
    assert_eq!(ready(node.addr).await, (200, "reachable".into()));

    proxy.cut();
    within(Duration::from_secs(15), "/ready reports the store unreachable", || async {
        ready(node.addr).await == (200, "unreachable".into())
    })
    .await;
    assert_eq!(rest(node.addr, "kept", "kept-key", &secret).trigger("news", "still", "1").await.0, 200);
    assert_eq!(client.recv_event("still").await["channel"], "news");
    assert_eq!(refusal(node.addr, "kept-key").await, None, "a known app connects");
    assert_eq!(refusal(node.addr, "never-seen").await, Some(4100), "an unknown key is asked to retry");

    proxy.heal();
    t.cli(&["apps", "disable", "kept"]);
    assert_eq!(closed(&mut client).await, (Some(4003), Some(4003)));
    assert_eq!(ready(node.addr).await, (200, "reachable".into()));
    drop(node);
    t.drop_db().await;
}

#[tokio::test]
async fn postgres_changes_reach_every_node() {
    changes_reach_every_node(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_changes_reach_every_node() {
    changes_reach_every_node(Db::MariaDb).await;
}

#[tokio::test]
async fn postgres_untracked_table_is_read_again_every_reload() {
    an_untracked_table_is_read_again_every_reload(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_untracked_table_is_read_again_every_reload() {
    an_untracked_table_is_read_again_every_reload(Db::MariaDb).await;
}

#[tokio::test]
async fn postgres_cut_off_leaves_the_apps_in_memory_serving() {
    the_database_cut_off_leaves_the_apps_in_memory_serving(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_cut_off_leaves_the_apps_in_memory_serving() {
    the_database_cut_off_leaves_the_apps_in_memory_serving(Db::MariaDb).await;
}
