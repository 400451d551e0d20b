//! Logging set-up, the Prometheus registry, and the process's own figures.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber with `filter` (EnvFilter syntax) and `format` (`pretty`|`json`).
pub fn init(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

pub mod metrics;

/// Resident set size of this process in bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}
