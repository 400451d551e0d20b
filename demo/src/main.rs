//! `sinew-demo`: shared notes. A Spine page loads the notes over Ajax and keeps them live through
//! Sinew; this backend persists every change to a JSON file and publishes it with sinew-sdk.

mod routes;
mod store;

use clap::Parser;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(about = "Shared notes over Sinew: a Spine app and its backend")]
struct Args {
    /// Address the page and API listen on (port 0 picks a free port).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Sinew's HTTP address, for publishing.
    #[arg(long, env = "DEMO_SINEW_URL", default_value = "http://127.0.0.1:6001")]
    sinew_url: String,
    /// Host and port browsers open the WebSocket to (default: those of --sinew-url).
    #[arg(long, env = "DEMO_WS_HOST")]
    ws_host: Option<String>,
    #[arg(long, env = "DEMO_WS_PORT")]
    ws_port: Option<u16>,
    #[arg(long, env = "DEMO_APP_ID", default_value = "1")]
    app_id: String,
    #[arg(long, env = "DEMO_APP_KEY", default_value = "app-key")]
    app_key: String,
    #[arg(long, env = "DEMO_APP_SECRET", default_value = "app-secret")]
    app_secret: String,
    /// Channel the changes are published on; private- or presence- keeps them to authorized pages.
    #[arg(long, env = "DEMO_CHANNEL", default_value = "private-notes")]
    channel: String,
    /// JSON file the notes are kept in.
    #[arg(long, env = "DEMO_DATA", default_value = "demo/data/notes.json")]
    data: PathBuf,
    /// The sdk/spine directory with its node_modules installed (npm ci --prefix sdk/spine).
    #[arg(long, env = "DEMO_SPINE_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/spine"))]
    spine_dir: PathBuf,
}

/// The scripts the page loads, from sdk/spine and its installed dependencies.
fn load_vendor(dir: &Path) -> Result<HashMap<&'static str, String>, String> {
    let files = [
        ("jquery.js", "node_modules/jquery/dist/jquery.min.js"),
        ("spine.js", "node_modules/spine/lib/spine.js"),
        ("spine-ajax.js", "node_modules/spine/lib/ajax.js"),
        ("pusher.js", "node_modules/pusher-js/dist/web/pusher.min.js"),
        ("sinew-spine.js", "dist/sinew-spine.umd.js"),
    ];
    let mut out = HashMap::new();
    for (name, rel) in files {
        let path = dir.join(rel);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e} (run `npm ci --prefix sdk/spine`)", path.display()))?;
        out.insert(name, text);
    }
    Ok(out)
}

fn client_config(args: &Args) -> Result<String, String> {
    let url = sinew_sdk::Client::new(&args.sinew_url, &args.app_id, &args.app_key, &args.app_secret)
        .map_err(|e| e.to_string())
        .and_then(|_| args.sinew_url.parse::<axum::http::Uri>().map_err(|e| e.to_string()))?;
    let host = args.ws_host.clone().or_else(|| url.host().map(str::to_string)).unwrap_or_else(|| "127.0.0.1".into());
    let port = args.ws_port.or_else(|| url.port_u16()).unwrap_or(6001);
    let config = serde_json::json!({
        "key": args.app_key,
        "wsHost": host,
        "wsPort": port,
        "channel": args.channel,
        "authEndpoint": "/pusher/auth",
    });
    Ok(format!("window.DEMO = {config};\n"))
}

async fn run(args: Args) -> Result<(), String> {
    let sinew = sinew_sdk::Client::new(&args.sinew_url, &args.app_id, &args.app_key, &args.app_secret)
        .map_err(|e| e.to_string())?;
    let app = routes::App {
        store: store::Store::open(args.data.clone()).map_err(|e| e.to_string())?,
        sinew,
        channel: args.channel.clone(),
        client_config: client_config(&args)?,
        vendor: load_vendor(&args.spine_dir)?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("{}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("sinew-demo listening on http://{addr} (publishing to {} on {})", args.channel, args.sinew_url);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, routes::router(Arc::new(app)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sinew-demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
