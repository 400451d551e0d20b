//! Started with a low soft open-files limit (1,024 is common), the server raises it to the hard limit
//! and serves more connections than the soft limit would have allowed.

use crate::common::{APP_ID, Client, KEY, Rest, SECRET};
use crate::process_support::{PATIENCE, SinewProcess};

/// The soft and hard "Max open files" of a process, from `/proc/PID/limits`.
fn open_files(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

#[tokio::test]
async fn a_low_soft_limit_is_raised_and_connections_beyond_it_are_served() {
    const SOFT: u32 = 128;
    let (_, hard) = open_files(std::process::id());
    assert!(hard.parse::<u32>().unwrap() > 2 * SOFT + 64, "hard limit {hard} too low here");
    let sinew = SinewProcess::spawn_with_soft_nofile(SOFT, &[]).await;
    let (soft_now, hard_now) = open_files(sinew.pid());
    assert_eq!(soft_now, hard_now, "soft limit not raised to the hard one");

    let mut clients = Vec::new();
    for _ in 0..2 * SOFT {
        // A connection the server cannot accept would hang, not fail: bound the wait.
        let mut c =
            tokio::time::timeout(PATIENCE, Client::connect(sinew.addr, KEY)).await.expect("connection accepted");
        assert_eq!(c.recv().await["event"], "pusher:connection_established");
        c.subscribe("many").await;
        clients.push(c);
    }
    let rest =
        Rest { base: format!("http://{}", sinew.addr), app_id: APP_ID.into(), key: KEY.into(), secret: SECRET.into() };
    let (status, body) = rest.trigger("many", "hello", "{}").await;
    assert_eq!(status, 200, "{body}");
    for c in &mut clients {
        let ev = c.recv_event("hello").await;
        assert_eq!(ev["channel"], "many");
    }
}
