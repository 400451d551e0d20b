//! The `sinew` binary: parse the command line, load the configuration, run the command.

use anyhow::Context as _;
use clap::Parser;
use sinew::app_store::SqlStore;
use sinew::cli::{AppsCommand, Cli, Command, ConfigCommand, DbCommand, WebhooksCommand};
use sinew::config::Config;
use sinew::server::Server;
use sinew::state::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Apps(AppsCommand::New)) = &cli.command {
        print!("{}", sinew::cli::new_app());
        return Ok(());
    }
    let mut config = Config::load(cli.config.as_deref(), std::env::vars()).context("configuration refused")?;
    if let Some(f) = &cli.log_format {
        config.log_format = f.clone();
    }
    for (i, app) in config.apps.iter().enumerate() {
        sinew::jwt::check_app(app).map_err(|e| anyhow::anyhow!("invalid config key `apps[{i}].{e}"))?;
    }
    let store = SqlStore::from_config(&config).context("app store refused")?;
    if let Some(Command::Apps(command)) = &cli.command {
        let Some(store) = &store else {
            anyhow::bail!(
                "app_store is `config`: set SINEW_APP_STORE and SINEW_DATABASE_URL to manage apps in a database"
            );
        };
        return manage_apps(store, command).await;
    }
    match &cli.command {
        Some(Command::Db(DbCommand::Migrate)) => {
            let Some(store) = store else {
                anyhow::bail!(
                    "app_store is `config`: set SINEW_APP_STORE and SINEW_DATABASE_URL to migrate a database"
                );
            };
            let done = store.migrate().await?;
            if done.is_empty() {
                println!("table `{}` is up to date", config.app_store_table);
            }
            for statement in done {
                println!("{statement}");
            }
            return Ok(());
        }
        Some(Command::Config(ConfigCommand::Check)) => {
            println!("configuration OK: {} app(s), listening on {}:{}", config.apps.len(), config.host, config.port);
            return Ok(());
        }
        Some(Command::Config(ConfigCommand::Print)) => {
            print!("{}", sinew::cli::print_config(&config));
            return Ok(());
        }
        Some(Command::Sign { method, path, body, app }) => {
            println!("{}", sinew::cli::sign_command(&config, method, path, body.as_deref(), app.as_deref())?);
            return Ok(());
        }
        Some(Command::Webhooks(WebhooksCommand::Replay { file })) => {
            sinew::telemetry::init(&config.log, &config.log_format);
            let summary = sinew::webhooks::replay(&config, file).await?;
            println!("delivered {} batches, {} remain in {}", summary.delivered, summary.remaining, file.display());
            if summary.remaining > 0 {
                std::process::exit(1);
            }
            return Ok(());
        }
        Some(Command::Apps(_)) | Some(Command::Serve) | None => {}
    }
    sinew::telemetry::init(&config.log, &config.log_format);
    if let Some(store) = &store {
        load_stored_apps(store, &mut config).await?;
    }
    let files = sinew::fd_limit::raise();
    if files.after != files.before {
        tracing::info!(from = ?files.before, to = ?files.after, "open-files limit raised");
    }
    if let Some(n) = files.after.filter(|n| *n < 4096) {
        tracing::warn!(limit = n, "open-files limit is low: connections beyond about this many wait unaccepted");
    }
    let signals = shutdown_signals();
    let dev_app = cli.config.is_none()
        && config.app_store == "config"
        && !std::env::vars().any(|(k, v)| k.starts_with("SINEW_APP_") && !v.is_empty());
    let server = Server::bind(Context::new(config.clone()))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let addr = server.local_addr()?;
    print_banner(&config, addr, dev_app);
    if server.is_tls() {
        println!("  TLS on: wss://{addr} and https://{addr} (pusher-js forceTLS: true, SDK useTLS: true)");
    }
    if let Some(m) = server.metrics_addr() {
        println!("  metrics at http://{m}/metrics");
    }
    if let Some(a) = server.admin_addr() {
        let scheme = if server.is_tls() && a == addr { "https" } else { "http" };
        println!("  admin API at {scheme}://{a}/admin/apps (Authorization: Bearer <admin_token>)");
    }
    // On a worker thread: the accept loop then runs beside the connections instead of waking the
    // main thread for every new one.
    tokio::spawn(server.run_with(signalled(signals.clone(), 1), signalled(signals, 2))).await??;
    Ok(())
}
/// `sinew apps list|create|update|enable|disable|rotate|delete` against the store.
async fn manage_apps(store: &SqlStore, command: &AppsCommand) -> anyhow::Result<()> {
    use sinew::app_store::admin::describe;
    let set = |pairs: &[String]| sinew::cli::settings(pairs).map_err(anyhow::Error::msg);
    match command {
        AppsCommand::New => {}
        AppsCommand::List => {
            for app in store.all().await? {
                println!("{}", describe(&app));
            }
        }
        AppsCommand::Create { set: pairs } => {
            let app = store.create_app(&set(pairs)?).await?;
            println!("{}", describe(&app));
            println!("secret={}", app.secret);
        }
        AppsCommand::Update { id, set: pairs } => println!("{}", describe(&store.update_app(id, &set(pairs)?).await?)),
        AppsCommand::Enable { id } => println!("{}", describe(&store.set_enabled(id, true).await?)),
        AppsCommand::Disable { id } => println!("{}", describe(&store.set_enabled(id, false).await?)),
        AppsCommand::Rotate { id } => println!("secret={}", store.rotate_secret(id).await?.secret),
        AppsCommand::Delete { id } => {
            store.delete_app(id).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

/// Adds the apps of the database to the configured ones. Without the database, start-up goes on
/// with the configured apps, or stops when there are none.
async fn load_stored_apps(store: &SqlStore, config: &mut Config) -> anyhow::Result<()> {
    match store.all().await {
        Ok(stored) => {
            let found = stored.len();
            for id in sinew::app_store::merge(&mut config.apps, stored) {
                tracing::warn!(app = %id, "app in the store has the id or key of a configured app; the configured one is served");
            }
            for app in &config.apps {
                sinew::jwt::check_app(app).map_err(|e| anyhow::anyhow!("app `{}`: invalid {e}", app.id))?;
            }
            tracing::info!(apps = found, table = %config.app_store_table, "apps read from the app store");
            Ok(())
        }
        Err(e) if config.apps.is_empty() => {
            anyhow::bail!("{e}; no app is configured besides the store, so there is nothing to serve")
        }
        Err(e) => {
            tracing::error!(error = %e, "app store unreachable at start-up; serving the configured apps only");
            Ok(())
        }
    }
}

fn print_banner(config: &Config, addr: std::net::SocketAddr, dev_app: bool) {
    println!("Sinew listening on {addr}");
    let scheme = if config.tls_cert.is_empty() { "http" } else { "https" };
    let urls = reachable(addr);
    for url in &urls {
        println!("  reachable at {scheme}://{url}");
    }
    if !config.debug_console_token.is_empty()
        && let Some(url) = urls.first()
    {
        println!("  debug console at {scheme}://{url}/debug?token=<debug_console_token>");
    }
    if dev_app && !addr.ip().is_loopback() {
        println!(
            "  WARNING: the development app's secret is public and this address is not loopback: anyone who \
             reaches it can publish and sign. Set real credentials (`sinew apps new`) or SINEW_HOST=127.0.0.1."
        );
    }
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

/// Addresses a client can use for `addr`: itself, or for a wildcard address loopback and the
/// machine's primary address (the one its default route leaves from; learnt without sending).
fn reachable(addr: std::net::SocketAddr) -> Vec<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    if !addr.ip().is_unspecified() {
        return vec![addr];
    }
    let (loopback, probe, any): (IpAddr, &str, &str) = if addr.is_ipv4() {
        (Ipv4Addr::LOCALHOST.into(), "192.0.2.1:80", "0.0.0.0:0")
    } else {
        (Ipv6Addr::LOCALHOST.into(), "[2001:db8::1]:80", "[::]:0")
    };
    let mut out = vec![SocketAddr::new(loopback, addr.port())];
    let primary = UdpSocket::bind(any).and_then(|s| s.connect(probe).and_then(|()| s.local_addr()));
    if let Ok(local) = primary
        && !local.ip().is_loopback()
        && !local.ip().is_unspecified()
    {
        out.push(SocketAddr::new(local.ip(), addr.port()));
    }
    out
}

/// Counts SIGTERM/SIGINT deliveries; registered before the server starts so an early signal is
/// not fatal.
fn shutdown_signals() -> tokio::sync::watch::Receiver<u32> {
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // SIGHUP reloads JWKS files and the TLS certificate where configured, and is ignored
        // otherwise instead of ending the process (tokio keeps the handler once installed).
        let _ = signal(SignalKind::hangup());
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    () = recv(&mut term) => "SIGTERM",
                    () = recv(&mut int) => "SIGINT",
                };
                tx.send_modify(|n| *n += 1);
                tracing::info!(signal = name, count = *tx.borrow(), "shutdown signal");
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
            tracing::info!(count = *tx.borrow(), "shutdown signal");
        }
    });
    rx
}

/// The next delivery of a signal whose handler could be installed (otherwise never).
#[cfg(unix)]
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Resolves once `count` signals arrived.
async fn signalled(mut signals: tokio::sync::watch::Receiver<u32>, count: u32) {
    if signals.wait_for(|n| *n >= count).await.is_err() {
        std::future::pending::<()>().await;
    }
}
