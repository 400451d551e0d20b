//! The drain delay, with the real binary and real signals: after SIGTERM/SIGINT `/ready` answers 503
//! while clients are still served and accepted, then every client gets 4200 and the process exits 0.

use crate::common::{APP_ID, Client, KEY, Next, Rest, SECRET};
use crate::process_support::{PATIENCE, SinewProcess};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

fn rest(addr: SocketAddr) -> Rest {
    Rest { base: format!("http://{addr}"), app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() }
}

/// `GET /ready` on a new connection each time, as a load balancer's health check does.
async fn ready(addr: SocketAddr) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    Ok(client.get(format!("http://{addr}/ready")).send().await?.status().as_u16())
}

/// Polls `/ready` until it stops answering 200; returns what it answered instead.
async fn first_unready(addr: SocketAddr) -> Result<u16, reqwest::Error> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match ready(addr).await {
            Ok(200) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

async fn connected(addr: SocketAddr) -> Client {
    let mut c = Client::connect(addr, KEY).await;
    let ev = c.recv().await;
    assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
    c
}

/// Reads until the server's 4200 `pusher:error` and the close that follows, waiting long enough
/// for a drain delay to run out.
async fn expect_4200(c: &mut Client) {
    let error = loop {
        match c.next_within(PATIENCE).await {
            Next::Event(ev) if ev["event"] == "pusher:error" => break ev,
            Next::Event(_) => continue,
            other => panic!("expected pusher:error 4200, got {other:?}"),
        }
    };
    assert_eq!(error["data"]["code"], 4200, "{error}");
    assert_eq!(c.expect_close().await, Some(4200));
}

#[tokio::test]
async fn sigterm_turns_ready_off_while_serving_and_a_second_sigterm_ends_the_delay() {
    let mut sinew = SinewProcess::spawn(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "300")]).await;
    let addr = sinew.addr;
    let mut early = connected(addr).await;
    assert_eq!(early.subscribe("drain").await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ready(addr).await.unwrap(), 200);

    sinew.signal("TERM").await;
    assert_eq!(first_unready(addr).await.unwrap(), 503);

    // Still serving: REST publishes reach the connected client, and new clients are accepted.
    let (status, body) = rest(addr).trigger("drain", "during-drain", "{\"n\":1}").await;
    assert_eq!(status, 200, "{body}");
    let ev: Value = early.recv_event("during-drain").await;
    assert_eq!(ev["channel"], "drain");
    let mut late = connected(addr).await;
    assert_eq!(late.subscribe("drain").await["event"], "pusher_internal:subscription_succeeded");
    let (status, _) = rest(addr).trigger("drain", "still-draining", "{\"n\":2}").await;
    assert_eq!(status, 200);
    early.recv_event("still-draining").await;
    late.recv_event("still-draining").await;
    assert_eq!(ready(addr).await.unwrap(), 503);

    // The 300 s delay would outlast every wait below: only the second signal can end it.
    sinew.signal("TERM").await;
    expect_4200(&mut early).await;
    expect_4200(&mut late).await;
    let status = sinew.exit_status().await;
    assert!(status.success(), "{status:?}\n{}", sinew.log());
    assert!(sinew.log().contains("second signal"), "{}", sinew.log());
}

#[tokio::test]
async fn sigint_drain_delay_runs_out_by_itself() {
    let mut sinew = SinewProcess::spawn(&[("SINEW_SHUTDOWN_DRAIN_SECONDS", "5")]).await;
    let addr = sinew.addr;
    let mut client = connected(addr).await;
    assert_eq!(ready(addr).await.unwrap(), 200);

    sinew.signal("INT").await;
    // A health check sees 503 before the port closes.
    assert_eq!(first_unready(addr).await.unwrap(), 503);
    expect_4200(&mut client).await;
    let status = sinew.exit_status().await;
    assert!(status.success(), "{status:?}\n{}", sinew.log());
    assert!(!sinew.log().contains("second signal"), "{}", sinew.log());
    assert!(ready(addr).await.is_err(), "the port is closed after exit");
}

#[tokio::test]
async fn by_default_sighup_is_harmless_and_sigterm_disconnects_with_4200() {
    let mut sinew = SinewProcess::spawn(&[]).await;
    let mut client = connected(sinew.addr).await;
    // Without JWKS files or TLS there is nothing to reload: SIGHUP changes nothing.
    sinew.signal("HUP").await;
    client.send(serde_json::json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(client.recv().await["event"], "pusher:pong");
    assert_eq!(ready(sinew.addr).await.unwrap(), 200);
    sinew.signal("TERM").await;
    expect_4200(&mut client).await;
    let status = sinew.exit_status().await;
    assert!(status.success(), "{status:?}\n{}", sinew.log());
}
