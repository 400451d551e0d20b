//! Measurements of the server process (`/proc`), latency summaries, and the report printed at the end.

use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use std::time::Instant;

/// Microseconds since the load generator started (one clock for senders and receivers).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// CPU time and resident memory of the server at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerSample {
    /// utime + stime, in seconds.
    pub cpu_s: f64,
    /// VmRSS, in bytes.
    pub rss: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` without a pid or when unreadable.
pub fn sample(pid: Option<u32>) -> Option<ServerSample> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some(ServerSample { cpu_s: ticks as f64 / 100.0, rss: rss_kb * 1024 })
}

/// Percentiles of a set of latencies in microseconds, reported in milliseconds.
pub fn latency(mut us: Vec<u32>) -> Value {
    if us.is_empty() {
        return json!(null);
    }
    us.sort_unstable();
    let at = |p: f64| us[((us.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    json!({"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0), "samples": us.len()})
}

/// The result of one scenario: parameters, figures, and whether every check passed.
pub struct Report {
    scenario: &'static str,
    params: Map<String, Value>,
    figures: Map<String, Value>,
    failures: Vec<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Report { scenario, params: Map::new(), figures: Map::new(), failures: Vec::new() }
    }

    /// Records a parameter.
    pub fn param(&mut self, k: &str, v: impl Into<Value>) {
        self.params.insert(k.into(), v.into());
    }

    /// Records a figure.
    pub fn figure(&mut self, k: &str, v: impl Into<Value>) {
        self.figures.insert(k.into(), v.into());
    }

    /// Records a failed correctness check.
    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
    }

    /// Adds the server's CPU (total and per `unit`) and memory change between two samples.
    pub fn server(&mut self, before: Option<ServerSample>, after: Option<ServerSample>, per: &[(&str, u64)]) {
        let (Some(b), Some(a)) = (before, after) else { return };
        let cpu = a.cpu_s - b.cpu_s;
        self.figure("server_cpu_s", round(cpu, 3));
        for (unit, n) in per {
            if *n > 0 {
                self.figure(&format!("server_cpu_us_per_{unit}"), round(cpu * 1e6 / *n as f64, 3));
            }
        }
        self.figure("server_rss_before_bytes", b.rss);
        self.figure("server_rss_after_bytes", a.rss);
    }

    /// True when no check failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        json!({"scenario": self.scenario, "ok": self.ok(), "params": self.params, "figures": self.figures, "failures": self.failures})
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut out = format!("== {} ({})\n", self.scenario, if self.ok() { "ok" } else { "FAILED" });
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("   {}\n", params.join(" ")));
        for (k, v) in &self.figures {
            match v {
                Value::Object(m) => {
                    for (k2, v2) in m {
                        out.push_str(&format!("   {:<36} {}\n", format!("{k}.{k2}"), v2));
                    }
                }
                v => out.push_str(&format!("   {k:<36} {v}\n")),
            }
        }
        for f in &self.failures {
            out.push_str(&format!("   FAILED: {f}\n"));
        }
        out
    }
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}
