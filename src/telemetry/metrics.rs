//! Prometheus metrics. Hot paths count in plain atomics ([`crate::hub::Stats`]); a scrape copies
//! them into this server's own recorder (no global state, so several servers can share a process)
//! and renders the text format. Labels are bounded: app id, REST endpoint template, status, outcome.

use crate::hub::Hub;
use crate::webhooks::WebhookStats;
use metrics::{Counter, Histogram, Label, counter, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// Latency buckets for REST handling, in seconds.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// This server's metrics registry.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    prefix: String,
    /// Handles of `http_calls_received_total` by status and endpoint, made on first use: a call
    /// then costs a lookup under a short lock, not a registry lookup with allocated labels.
    calls: Mutex<HashMap<u16, HashMap<String, Counter>>>,
    /// `rest_publish_duration_seconds`.
    publish_seconds: Histogram,
}

impl Metrics {
    /// A fresh registry whose metric names start with `prefix` (e.g. `sinew_`).
    pub fn new(prefix: &str) -> Self {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(Matcher::Suffix("seconds".into()), BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "histogram buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let publish_seconds =
            with_local_recorder(&recorder, || histogram!(format!("{prefix}rest_publish_duration_seconds")));
        Metrics { recorder, handle, prefix: prefix.to_string(), calls: Mutex::default(), publish_seconds }
    }

    fn name(&self, n: &str) -> String {
        format!("{}{}", self.prefix, n)
    }

    /// Counts one REST call by endpoint template and status; publishes also record their latency.
    pub fn http_call(&self, endpoint: &str, status: u16, seconds: f64) {
        let counter = {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            let by_endpoint = calls.entry(status).or_default();
            match by_endpoint.get(endpoint) {
                Some(c) => c.clone(),
                None => {
                    let labels =
                        vec![Label::new("endpoint", endpoint.to_string()), Label::new("status", status.to_string())];
                    let c = with_local_recorder(&self.recorder, || {
                        counter!(self.name("http_calls_received_total"), labels)
                    });
                    by_endpoint.insert(endpoint.to_string(), c.clone());
                    c
                }
            }
        };
        counter.increment(1);
        if endpoint.ends_with("/events") || endpoint.ends_with("/batch_events") {
            self.publish_seconds.record(seconds);
        }
    }

    /// Folds the latency samples recorded since the last call into their histogram buckets. The
    /// recorder keeps every sample until then, so this runs every few seconds whether or not
    /// anyone scrapes `/metrics`.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Copies the live counters of the hub and of webhook delivery into the registry and renders
    /// the Prometheus text format.
    pub fn render(&self, hub: &Hub, webhooks: &WebhookStats) -> String {
        with_local_recorder(&self.recorder, || {
            for app in hub.apps() {
                let id = app.id().to_string();
                let s = app.stats().snapshot();
                let l = || vec![Label::new("app_id", id.clone())];
                gauge!(self.name("connected"), l()).set(app.connections().count() as f64);
                counter!(self.name("new_connections_total"), l()).absolute(s.connections_opened);
                counter!(self.name("new_disconnections_total"), l()).absolute(s.connections_closed);
                counter!(self.name("socket_received_bytes"), l()).absolute(s.bytes_in);
                counter!(self.name("socket_transmitted_bytes"), l()).absolute(s.bytes_out);
                counter!(self.name("ws_messages_received_total"), l()).absolute(s.messages_in);
                counter!(self.name("ws_messages_sent_total"), l()).absolute(s.messages_out);
                counter!(self.name("events_published_total"), l()).absolute(s.events_published);
                counter!(self.name("deliveries_total"), l()).absolute(s.deliveries);
                counter!(self.name("outbox_overflows_total"), l()).absolute(s.outbox_overflows);
                counter!(self.name("client_events_rate_limited_total"), l()).absolute(s.rate_limited);
            }
            let w = webhooks;
            for (outcome, v) in
                [("sent", &w.sent), ("retried", &w.retried), ("failed", &w.failed), ("dead_lettered", &w.dead_lettered)]
            {
                counter!(self.name("webhook_batches_total"), vec![Label::new("outcome", outcome)])
                    .absolute(v.load(Ordering::Relaxed));
            }
            counter!(self.name("webhook_events_lost_total")).absolute(w.lost.load(Ordering::Relaxed));
            let adapter = hub.adapter();
            if let Some(a) = adapter.stats() {
                let r = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
                counter!(self.name("adapter_publishes_total")).absolute(r(&a.published));
                counter!(self.name("adapter_messages_received_total")).absolute(r(&a.received));
                counter!(self.name("adapter_errors_total")).absolute(r(&a.errors));
                counter!(self.name("adapter_reconnects_total")).absolute(r(&a.reconnects));
                counter!(self.name("adapter_messages_dropped_total")).absolute(r(&a.dropped));
                gauge!(self.name("adapter_connected")).set(if adapter.is_connected() { 1.0 } else { 0.0 });
            }
            gauge!(self.name("process_resident_memory_bytes")).set(super::resident_bytes() as f64);
        });
        self.handle.render()
    }
}
