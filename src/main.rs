//! The `sinew` binary: parse the command line, load the configuration, serve.

use anyhow::Context as _;
use clap::Parser;
use sinew::config::Config;
use sinew::server::Server;
use sinew::state::Context;
use std::path::PathBuf;

/// Sinew: a realtime gateway that speaks the Pusher Channels protocol.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; every key can also be set with SINEW_* variables.
    #[arg(long, short, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Webhook tools.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, clap::Subcommand)]
enum WebhooksCommand {
    /// Send the events of a dead-letter file again; delivered lines are removed from it.
    Replay {
        /// The dead-letter file (JSON lines).
        file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), std::env::vars()).context("configuration refused")?;
    sinew::telemetry::init(&config.log, &config.log_format);
    for (i, app) in config.apps.iter().enumerate() {
        sinew::jwt::check_app(app).map_err(|e| anyhow::anyhow!("invalid config key `apps[{i}].{e}"))?;
    }
    if let Some(Command::Webhooks(WebhooksCommand::Replay { file })) = &cli.command {
        let summary = sinew::webhooks::replay(&config, file).await?;
        println!("delivered {} batches, {} remain in {}", summary.delivered, summary.remaining, file.display());
        if summary.remaining > 0 {
            std::process::exit(1);
        }
        return Ok(());
    }
    let dev_app = cli.config.is_none() && !std::env::vars().any(|(k, _)| k.starts_with("SINEW_APP_"));
    let server = Server::bind(Context::new(config.clone()))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let addr = server.local_addr()?;
    print_banner(&config, addr, dev_app);
    if let Some(m) = server.metrics_addr() {
        println!("  metrics at http://{m}/metrics");
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}

fn print_banner(config: &Config, addr: std::net::SocketAddr, dev_app: bool) {
    println!("Sinew listening on {addr}");
    for app in &config.apps {
        println!("  app id={} key={} client_events={}", app.id, app.key, app.client_events);
    }
    if dev_app && let Some(app) = config.apps.first() {
        println!("  development app secret={} (set SINEW_APP_ID/KEY/SECRET or --config for real apps)", app.secret);
        println!();
        println!("  pusher-js:");
        println!(
            "    new Pusher('{}', {{ cluster: 'local', wsHost: '127.0.0.1', wsPort: {}, forceTLS: false, enabledTransports: ['ws'] }});",
            app.key,
            addr.port()
        );
        println!("  server SDK (npm pusher):");
        println!(
            "    new Pusher({{ appId: '{}', key: '{}', secret: '{}', host: '127.0.0.1', port: '{}', useTLS: false }});",
            app.id,
            app.key,
            app.secret,
            addr.port()
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
