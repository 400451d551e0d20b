//! The integration tests, as one test binary: every module below was its own test crate, each
//! linking the whole server again. One binary links it once.
//!
//! The tests share nothing process-wide: each server in this process binds its own ports and has
//! its own metrics recorder; the real binary (`CARGO_BIN_EXE_sinew`) runs as a child process where
//! a test needs signals, its own open-files limit or its own environment. nextest runs every test
//! in a process of its own anyway; `cargo test` runs them as threads of this one. The one test that
//! needs a process to itself, tests/http_fallback_churn.rs (it checks the process's memory), is
//! its own crate.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cluster_support;
mod common;
mod db_support;
mod fallback_support;
// Some of its helpers serve only fd_limit, which is Linux-only.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod process_support;

mod admin_api;
mod app_store;
mod app_store_changes;
mod backpressure;
mod bench_smoke;
mod channels;
mod cli;
mod client_events;
mod cluster;
mod cluster_faults;
mod cluster_topologies;
mod cluster_webhooks;
#[cfg(target_os = "linux")]
mod fd_limit;
mod handshake;
mod history;
mod history_cluster;
mod http_fallback;
mod http_smuggling;
mod jwt_auth;
mod metrics;
mod openapi;
mod origins;
mod rest;
mod rest_http1;
mod rest_rates;
mod rfc6455;
mod shutdown_drain;
mod tls;
mod users;
mod webhooks;
mod webhooks_live;
mod wire;
