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
    let cpu_s = cpu_seconds(&pid.to_string())?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(ServerSample { cpu_s, rss: rss_kb * 1024 })
}

/// utime + stime of `/proc/{process}/stat` (a pid, or `self`), in seconds.
fn cpu_seconds(process: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some(ticks as f64 / 100.0)
}

/// `generator_busy` at or above this is reported as the generator's limit (`tests/bench/summary.py`
/// uses the same threshold).
pub const NEARLY_FULL: f64 = 0.9;

/// Measures the load generator's own CPU time over a window: `generator_busy` is its CPU seconds
/// divided by wall seconds times the cores it may use. An average: at a paced rate, short bursts
/// can fill the core while the average stays low.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorClock {
    cpu_s: Option<f64>,
    at: Instant,
}

/// The generator's CPU seconds and wall seconds over a window.
#[derive(Debug, Clone, Copy)]
pub struct GeneratorUse {
    cpu_s: f64,
    wall_s: f64,
}

impl GeneratorClock {
    /// Starts measuring now.
    pub fn start() -> Self {
        GeneratorClock { cpu_s: cpu_seconds("self"), at: Instant::now() }
    }

    /// Ends the window now; `None` when `/proc/self/stat` cannot be read.
    pub fn stop(self) -> Option<GeneratorUse> {
        Some(GeneratorUse { cpu_s: cpu_seconds("self")? - self.cpu_s?, wall_s: self.at.elapsed().as_secs_f64() })
    }
}

/// Cores the load generator may use: its CPU affinity (as `taskset` sets it) and cgroup quota.
fn generator_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `cpu_s` over `wall_s` on `cores` cores, rounded to two decimals.
fn busy(cpu_s: f64, wall_s: f64, cores: usize) -> f64 {
    round(cpu_s / (wall_s.max(1e-9) * cores.max(1) as f64), 2)
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
    notes: Vec<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Report { scenario, params: Map::new(), figures: Map::new(), failures: Vec::new(), notes: Vec::new() }
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

    /// Adds the load generator's CPU time over a window (see [`GeneratorClock`]) and how busy its
    /// cores were, with a note when they were nearly full: the server may then have been waiting
    /// for the generator.
    pub fn generator(&mut self, used: Option<GeneratorUse>) {
        let Some(u) = used else { return };
        let cores = generator_cores();
        let busy = busy(u.cpu_s, u.wall_s, cores);
        self.figure("generator_cpu_s", round(u.cpu_s, 3));
        self.figure("generator_busy", busy);
        if busy >= NEARLY_FULL {
            self.note(format!(
                "the load generator kept its {cores} core(s) {:.0}% busy: rates may be the generator's limit",
                busy * 100.0
            ));
        }
    }

    /// Records a remark printed with the report (not a failure).
    pub fn note(&mut self, why: String) {
        self.notes.push(why);
    }

    /// True when no check failed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        json!({"scenario": self.scenario, "ok": self.ok(), "params": self.params, "figures": self.figures,
            "failures": self.failures, "notes": self.notes})
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
        for n in &self.notes {
            out.push_str(&format!("   note: {n}\n"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn generator_figures_come_from_this_process() {
        let clock = GeneratorClock::start();
        assert!(clock.cpu_s.is_some(), "/proc/self/stat is readable");
        // Spin until this process has used 0.1 s of CPU by its own count (on a busy machine that
        // takes longer than 0.1 s of wall time), at most 10 s.
        let (spin, start) = (Instant::now(), cpu_seconds("self").unwrap_or(0.0));
        let mut x = 0u64;
        while cpu_seconds("self").unwrap_or(0.0) - start < 0.1 && spin.elapsed().as_secs() < 10 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let used = clock.stop();
        assert!(used.map_or(0.0, |u| u.cpu_s) >= 0.05, "the spin was counted: {used:?}");
        let mut r = Report::new("t");
        r.generator(used);
        assert!(r.figures.contains_key("generator_cpu_s"));
        assert!(r.figures.get("generator_busy").and_then(Value::as_f64).is_some_and(|b| b > 0.0));
        assert!(r.ok(), "a busy generator is a note, not a failure");
    }

    #[test]
    fn busy_is_cpu_over_wall_and_cores() {
        assert_eq!(busy(1.0, 2.0, 1), 0.5);
        assert_eq!(busy(3.0, 2.0, 2), 0.75);
        assert_eq!(busy(0.0, 0.0, 0), 0.0);
    }

    #[test]
    fn a_nearly_full_generator_gets_a_note() {
        let mut r = Report::new("t");
        r.generator(Some(GeneratorUse { cpu_s: 0.89 * generator_cores() as f64, wall_s: 1.0 }));
        assert!(r.notes.is_empty());
        r.generator(Some(GeneratorUse { cpu_s: 0.95 * generator_cores() as f64, wall_s: 1.0 }));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.table().contains("95% busy"));
        r.generator(None);
        assert_eq!(r.figures["generator_busy"], 0.95, "no reading leaves the figures as they were");
    }

    #[test]
    fn notes_are_printed_and_kept_in_json() {
        let mut r = Report::new("t");
        r.note("look here".into());
        assert!(r.table().contains("note: look here"));
        assert_eq!(r.json()["notes"][0], "look here");
        assert!(r.ok());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn server_sample_of_this_process() {
        let s = sample(Some(std::process::id())).map(|s| s.rss).unwrap_or(0);
        assert!(s > 0);
        assert!(sample(None).is_none());
    }
}
