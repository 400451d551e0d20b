//! Apps in a database: a soketi-shaped `apps` table in the machine's PostgreSQL and MariaDB (each
//! test makes its own database and drops it) serves connections and signed REST calls of the apps
//! in it; `sinew db migrate` completes soketi's table without disturbing it, or creates Sinew's;
//! start-up without the database and without any other app stops with a clear message.

use crate::common::Client;
use crate::db_support::{Db, TestDb, insert, rest, soketi_table};
use crate::process_support::SinewProcess;
use serde_json::json;

async fn a_soketi_table_serves_its_apps(db: Db) {
    let t = TestDb::create(db).await;
    let table = soketi_table(db);
    let one = insert(db, "app-1", "key-1", "secret-1", 1, -1);
    let two = insert(db, "app-2", "key-2", "secret-2", 1, 2);
    let off = insert(db, "app-3", "key-3", "secret-3", 0, -1);
    t.run(&[table, &one, &two, &off]).await;
    let url = t.url();
    let env = [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())];
    let node = SinewProcess::spawn(&env).await;

    for (id, key, secret) in [("app-1", "key-1", "secret-1"), ("app-2", "key-2", "secret-2")] {
        let mut c = Client::connect(node.addr, key).await;
        assert_eq!(c.recv().await["event"], "pusher:connection_established");
        c.subscribe("news").await;
        let (status, _) = rest(node.addr, id, key, secret).trigger("news", "hello", id).await;
        assert_eq!(status, 200);
        assert_eq!(c.recv().await, json!({"event":"hello","channel":"news","data":id}));
    }
    // A wrong secret is refused; the disabled app's clients get 4003; the development app is not served.
    assert_eq!(rest(node.addr, "app-1", "key-1", "secret-2").trigger("news", "x", "1").await.0, 401);
    let mut off = Client::connect(node.addr, "key-3").await;
    assert_eq!(off.recv().await["data"]["code"], 4003);
    let mut dev = Client::connect(node.addr, "app-key").await;
    assert_eq!(dev.recv().await["data"]["code"], 4001);
    // soketi's max_backend_events_per_sec of app-2 (2) applies.
    let r = rest(node.addr, "app-2", "key-2", "secret-2");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(r.trigger("news", "a", "1").await.0, 200);
    assert_eq!(r.trigger("news", "b", "2").await.0, 200);
    assert_eq!(r.trigger("news", "c", "3").await.0, 429);
    drop(node);

    // `sinew db migrate` adds Sinew's columns to soketi's table; its rows keep working.
    let migrate = || t.sinew(&["db", "migrate"], None);
    let (ok, printed, err) = migrate();
    assert!(ok, "{printed}{err}");
    assert!(printed.contains("sinew_settings") && printed.contains("updated_at"), "{printed}");
    assert!(!printed.contains("CREATE TABLE"), "{printed}");
    let again = migrate().1;
    assert!(again.contains("up to date"), "{again}");
    t.run(&["UPDATE apps SET sinew_settings = '{\"subscription_count\": true}' WHERE id = 'app-1'"]).await;
    let node = SinewProcess::spawn(&env).await;
    let mut c = Client::connect(node.addr, "key-1").await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    c.subscribe("counted").await;
    assert_eq!(c.recv().await["event"], "pusher_internal:subscription_count");
    drop(node);
    t.drop_db().await;
}

async fn migrate_creates_the_table_and_a_store_without_apps_or_database_says_so(db: Db) {
    let t = TestDb::create(db).await;
    let url = t.url();
    let (_, printed, _) = t.sinew(&["db", "migrate"], None);
    assert!(printed.contains("CREATE TABLE"));
    let k = if db == Db::Postgres { "\"key\"" } else { "`key`" };
    t.run(&[&format!("INSERT INTO apps (id, {k}, secret) VALUES ('fresh', 'fresh-key', 'fresh-secret')")]).await;
    let env = [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())];
    let node = SinewProcess::spawn(&env).await;
    let mut c = Client::connect(node.addr, "fresh-key").await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    drop(node);
    // Nothing listens on port 9: no database, no configured app, nothing to serve.
    let nowhere = if db == Db::Postgres { "postgres://postgres@127.0.0.1:9/x" } else { "mysql://root@127.0.0.1:9/x" };
    let (ok, _, err) = t.sinew(&["serve"], Some(nowhere));
    assert!(!ok);
    assert!(err.contains("app store is unavailable") && err.contains("nothing to serve"), "{err}");
    t.drop_db().await;
}

/// `sinew apps ...` against the store, then a node serving what they wrote.
async fn the_apps_commands_manage_the_store(db: Db) {
    let t = TestDb::create(db).await;
    let url = t.url();
    let sinew = |args: &[&str]| {
        let (ok, out, err) = t.sinew(args, None);
        (ok, out + &err)
    };
    // On soketi's table as it is: plain settings fit its columns, others need the migration.
    t.run(&[soketi_table(db)]).await;
    let (ok, out) =
        sinew(&["apps", "create", "--set", "id=shop", "--set", "key=shop-key", "--set", "client_events=true"]);
    assert!(ok, "{out}");
    let secret = out.lines().find_map(|l| l.strip_prefix("secret=")).unwrap().to_string();
    assert_eq!(secret.len(), 32);
    let (ok, out) = sinew(&["apps", "update", "shop", "--set", "subscription_count=true"]);
    assert!(!ok && out.contains("sinew db migrate"), "{out}");
    assert!(sinew(&["db", "migrate"]).0);
    let (ok, out) =
        sinew(&["apps", "update", "shop", "--set", "subscription_count=true", "--set", "max_connections=5"]);
    assert!(ok && out.contains("max_connections=5") && out.contains("subscription_count"), "{out}");
    let (ok, out) = sinew(&["apps", "create", "--set", "key=shop-key"]);
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = sinew(&["apps", "update", "shop", "--set", "max_batch_size=0"]);
    assert!(!ok && out.contains("max_batch_size"), "{out}");
    let (_, list) = sinew(&["apps", "list"]);
    assert!(list.contains("shop key=shop-key enabled=true client_events=true") && !list.contains(&secret), "{list}");

    // Disabled: 4003. Enabled and rotated: the new secret signs, the old one no longer does.
    assert!(sinew(&["apps", "disable", "shop"]).0);
    let env = [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())];
    let node = SinewProcess::spawn(&env).await;
    assert_eq!(Client::connect(node.addr, "shop-key").await.recv().await["data"]["code"], 4003);
    drop(node);
    assert!(sinew(&["apps", "enable", "shop"]).0);
    let (ok, out) = sinew(&["apps", "rotate", "shop"]);
    assert!(ok, "{out}");
    let rotated = out.trim().strip_prefix("secret=").unwrap().to_string();
    let node = SinewProcess::spawn(&env).await;
    let mut c = Client::connect(node.addr, "shop-key").await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    c.subscribe("orders").await;
    assert_eq!(c.recv().await["event"], "pusher_internal:subscription_count");
    assert_eq!(rest(node.addr, "shop", "shop-key", &rotated).trigger("orders", "paid", "1").await.0, 200);
    assert_eq!(rest(node.addr, "shop", "shop-key", &secret).trigger("orders", "paid", "2").await.0, 401);
    drop(node);
    assert!(sinew(&["apps", "delete", "shop"]).0);
    let (ok, out) = sinew(&["apps", "delete", "shop"]);
    assert!(!ok && out.contains("no app with id `shop`"), "{out}");
    t.drop_db().await;
}

/// An app inserted in the table while two nodes run connects and publishes at its first try on
/// both; a burst of connections with made-up keys gets 4001 and costs the store a handful of
/// queries; with the database gone, a made-up key gets 4100 (try again), a known one connects.
async fn apps_inserted_while_running_are_found_at_first_use(db: Db) {
    let t = TestDb::create(db).await;
    let url = t.url();
    let sinew = |args: &[&str]| {
        let (ok, out, _) = t.sinew(args, None);
        (ok, out)
    };
    assert!(sinew(&["db", "migrate"]).0);
    assert!(sinew(&["apps", "create", "--set", "id=first", "--set", "key=first-key"]).0);
    let env = [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", url.as_str())];
    let (a, b) = (SinewProcess::spawn(&env).await, SinewProcess::spawn(&env).await);

    let (ok, out) =
        sinew(&["apps", "create", "--set", "id=late", "--set", "key=late-key", "--set", "client_events=true"]);
    assert!(ok, "{out}");
    let secret = out.lines().find_map(|l| l.strip_prefix("secret=")).unwrap().to_string();
    let mut on_b = Client::connect(b.addr, "late-key").await;
    assert_eq!(on_b.recv().await["event"], "pusher:connection_established", "found at the first connection");
    on_b.subscribe("news").await;
    assert_eq!(
        rest(a.addr, "late", "late-key", &secret).trigger("news", "hi", "1").await.0,
        200,
        "found at the first REST call"
    );

    let usage = |addr| async move {
        let v: serde_json::Value = reqwest::get(format!("http://{addr}/usage")).await.unwrap().json().await.unwrap();
        v["app_store"]["queries"].as_u64().unwrap()
    };
    let before = usage(a.addr).await;
    let mut burst = Vec::new();
    for i in 0..1000 {
        let addr = a.addr;
        burst.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &format!("made-up-{i}")).await;
            c.recv().await["data"]["code"].as_u64()
        }));
    }
    for c in burst {
        assert_eq!(c.await.unwrap(), Some(4001));
    }
    let queries = usage(a.addr).await - before;
    eprintln!("1000 unknown keys cost the store {queries} queries");
    assert!(queries <= 10, "1000 unknown keys cost {queries} queries");
    drop((a, b));

    // The database gone: known apps connect, unknown keys are asked to come back.
    let nowhere = if db == Db::Postgres { "postgres://postgres@127.0.0.1:9/x" } else { "mysql://root@127.0.0.1:9/x" };
    let cfg = "[[apps]]\nid = \"cfg\"\nkey = \"cfg-key\"\nsecret = \"cfg-secret\"\n";
    let file = std::env::temp_dir().join(format!("sinew-store-down-{}.toml", rand::random::<u32>()));
    std::fs::write(&file, cfg).unwrap();
    let file_arg = file.to_str().unwrap().to_string();
    let down = [("SINEW_APP_STORE", t.store()), ("SINEW_DATABASE_URL", nowhere)];
    let node = SinewProcess::spawn_args(&["--config", &file_arg], &down).await;
    let mut known = Client::connect(node.addr, "cfg-key").await;
    assert_eq!(known.recv().await["event"], "pusher:connection_established");
    let mut unknown = Client::connect(node.addr, "late-key").await;
    assert_eq!(unknown.recv().await["data"]["code"], 4100);
    drop(node);
    let _ = std::fs::remove_file(file);
    t.drop_db().await;
}

#[tokio::test]
async fn postgres_apps_inserted_while_running_are_found_at_first_use() {
    apps_inserted_while_running_are_found_at_first_use(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_apps_inserted_while_running_are_found_at_first_use() {
    apps_inserted_while_running_are_found_at_first_use(Db::MariaDb).await;
}

#[tokio::test]
async fn postgres_apps_commands_manage_the_store() {
    the_apps_commands_manage_the_store(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_apps_commands_manage_the_store() {
    the_apps_commands_manage_the_store(Db::MariaDb).await;
}

#[tokio::test]
async fn postgres_soketi_table_serves_its_apps() {
    a_soketi_table_serves_its_apps(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_soketi_table_serves_its_apps() {
    a_soketi_table_serves_its_apps(Db::MariaDb).await;
}

#[tokio::test]
async fn postgres_migrate_creates_the_table() {
    migrate_creates_the_table_and_a_store_without_apps_or_database_says_so(Db::Postgres).await;
}

#[tokio::test]
async fn mariadb_migrate_creates_the_table() {
    migrate_creates_the_table_and_a_store_without_apps_or_database_says_so(Db::MariaDb).await;
}
