//! The real `sinew` binary as a child process, for tests that need real signals.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Generous bound for anything the tests wait on.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct SinewProcess {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

impl SinewProcess {
    /// Starts `sinew` on a free port of 127.0.0.1 (metrics off) with the development app and `env`,
    /// and waits for its banner.
    pub async fn spawn(env: &[(&str, &str)]) -> SinewProcess {
        Self::start(Command::new(env!("CARGO_BIN_EXE_sinew")), env).await
    }

    /// [`SinewProcess::spawn`] with command-line arguments (`--config FILE`).
    pub async fn spawn_args(args: &[&str], env: &[(&str, &str)]) -> SinewProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sinew"));
        cmd.args(args);
        Self::start(cmd, env).await
    }

    /// [`SinewProcess::spawn`], started with a soft open-files limit of `soft` (set by the shell).
    pub async fn spawn_with_soft_nofile(soft: u32, env: &[(&str, &str)]) -> SinewProcess {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("ulimit -Sn {soft} && exec \"$0\""), env!("CARGO_BIN_EXE_sinew")]);
        Self::start(cmd, env).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("process still running")
    }

    async fn start(mut cmd: Command, env: &[(&str, &str)]) -> SinewProcess {
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SINEW_")) {
            cmd.env_remove(k);
        }
        cmd.env("SINEW_HOST", "127.0.0.1")
            .env("SINEW_PORT", "0")
            .env("SINEW_METRICS_ENABLED", "false")
            .env("SINEW_LOG", "sinew=info,warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn sinew");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        let stderr_reader = tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = out_lines.next_line().await {
                if let Some(a) = line.strip_prefix("Sinew listening on ") {
                    return Some(a.trim().parse::<SocketAddr>().expect("banner address"));
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(addr) = addr else {
            panic!("sinew did not start:\n{}", stderr.lock().unwrap());
        };
        tokio::spawn(async move { while let Ok(Some(_)) = out_lines.next_line().await {} });
        SinewProcess { child, addr, stderr, stderr_reader: Some(stderr_reader) }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) with kill(1).
    pub async fn signal(&self, name: &str) {
        let pid = self.pid();
        let status = Command::new("kill").args(["-s", name, &pid.to_string()]).status().await.expect("run kill");
        assert!(status.success(), "kill -s {name} {pid} failed");
    }

    /// Waits for the process to exit and for its whole log (panics after [`PATIENCE`]).
    pub async fn exit_status(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.expect("wait for sinew"),
            Err(_) => panic!("sinew did not exit; log:\n{}", self.log()),
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout(PATIENCE, reader).await;
        }
        status
    }

    /// Everything written to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr has `needle` at least `count` times (panics after [`PATIENCE`]).
    pub async fn wait_log(&self, needle: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.log().matches(needle).count() < count {
            assert!(tokio::time::Instant::now() < deadline, "no {needle:?} (x{count}) in the log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
