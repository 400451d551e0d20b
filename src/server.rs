//! Binds the listener, assembles the router, runs until shutdown and drains connections.

use crate::api::auth_endpoint::AuthApps;
use crate::api::{self, ApiError};
use crate::hub::Outbox;
use crate::ops;
use crate::state::Context;
use crate::tls::Tls;
use crate::transport::prefixed::PrefixedStream;
use crate::transport::{http, ws};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Duration;
use tokio_util::task::task_tracker::TaskTrackerToken;

/// The full HTTP router: WebSocket endpoint, REST API, operational endpoints, the admin API when
/// it has no port of its own, JSON 404s.
fn router(ctx: Context, auth: Arc<AuthApps>) -> Router {
    let prefix = ctx.config.path_prefix.clone();
    let mut r = Router::new()
        .route(ws::ROUTE, get(ws::upgrade))
        .route(&format!("{}/", ws::ROUTE), get(ws::upgrade))
        .merge(api::router(&ctx, auth))
        .merge(ops::router())
        .merge(crate::debug_console::router(&ctx))
        .merge(http::router(&ctx));
    if ctx.config.admin_port == 0 {
        r = r.merge(crate::admin_api::router(&ctx));
    }
    if !prefix.is_empty() {
        r = r.route(&format!("{prefix}{}", ws::ROUTE), get(ws::upgrade));
    }
    r.fallback(|| async { ApiError::NotFound("Not found".into()) })
        .layer(DefaultBodyLimit::max(ctx.config.max_request_bytes))
        .with_state(ctx)
}

/// How long a new connection may take to send its first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections the kernel may hold for the main port before they are accepted (it caps this at
/// `net.core.somaxconn`): room for a reconnect storm of thousands of clients at once, where a
/// full queue would make each dropped client wait a second or more for its SYN to be resent.
const ACCEPT_BACKLOG: u32 = 4096;

/// Listens on the first address `host:port` resolves to that can be bound, with [`ACCEPT_BACKLOG`].
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match listen_on(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host} resolves to no address"))
    }))
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted server can take its port back at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    /// TLS on the main port, when `tls_cert`/`tls_key` are set.
    tls: Option<Arc<Tls>>,
    metrics: Option<TcpListener>,
    /// The admin API's own listener, when `admin_token` and `admin_port` are set.
    admin: Option<TcpListener>,
    ctx: Context,
    /// Token verifiers of the auth endpoints (their JWKS files are reloaded while serving).
    auth: Arc<AuthApps>,
}

impl Server {
    /// Binds `host:port` from the configuration (port 0 picks a free port).
    pub async fn bind(ctx: Context) -> std::io::Result<Self> {
        let tcp = listen(&ctx.config.host, ctx.config.port).await?;
        // Accepted sockets inherit it on Linux (see `ws::Task::attach`): messages are written
        // whole, and none should wait for an ACK.
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on the listener");
        }
        let tls = if ctx.config.tls_cert.is_empty() {
            None
        } else {
            let certs = crate::tls::CertStore::load(&ctx.config.tls_cert, &ctx.config.tls_key)
                .map_err(std::io::Error::other)?;
            Some(Arc::new(Tls::new(certs)?))
        };
        let metrics = if ctx.config.metrics_enabled {
            let host = if ctx.config.metrics_host.is_empty() { &ctx.config.host } else { &ctx.config.metrics_host };
            match TcpListener::bind((host.as_str(), ctx.config.metrics_port)).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(error = %e, host, port = ctx.config.metrics_port, "metrics listener not started");
                    None
                }
            }
        } else {
            None
        };
        // Unlike metrics, an admin API asked for and not served stops start-up.
        let admin = if !ctx.config.admin_token.is_empty() && ctx.config.admin_port != 0 {
            let (host, port) = (ctx.config.host.as_str(), ctx.config.admin_port);
            let bound = listen(host, port).await;
            Some(bound.map_err(|e| std::io::Error::new(e.kind(), format!("admin API on {host}:{port}: {e}")))?)
        } else {
            None
        };
        let auth = Arc::new(AuthApps::new(&ctx.config.apps));
        Ok(Server { listener: tcp, tls, metrics, admin, ctx, auth })
    }

    /// The bound address of the metrics listener, if it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address of the admin API: its own listener's, or the main port's when it has none;
    /// `None` when the admin API is off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        if self.ctx.config.admin_token.is_empty() {
            return None;
        }
        self.admin.as_ref().map_or_else(|| self.listener.local_addr(), |l| l.local_addr()).ok()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether the main port speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The shared context (for tests and embedding).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Serves until `signal` resolves, keeps serving with `/ready` at 503 for `shutdown_drain_seconds`,
    /// then tells every client to reconnect (4200) and waits for the connection tasks to finish, at
    /// most a short grace period.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        self.run_with(signal, std::future::pending()).await
    }

    /// Like [`Server::run`]; `again` resolving during the drain delay (a second signal) ends the delay.
    pub async fn run_with(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
        again: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ctx = self.ctx.clone();
        ctx.webhooks.start();
        ctx.hub.start_cluster();
        let background =
            crate::background::Tasks::spawn(&ctx, &self.auth, self.tls.as_deref(), self.metrics, self.admin);
        let stop = ctx.clone();
        let until = async move {
            tokio::select! {
                () = signal => drain(&stop, again).await,
                () = stop.shutdown.cancelled() => {}
            }
        };
        let app = router(ctx.clone(), self.auth.clone());
        let served = serve(self.listener, self.tls, ctx.clone(), app, until).await;
        ctx.begin_shutdown();
        ctx.tasks.close();
        let grace = Duration::from_secs(ctx.config.shutdown_grace_seconds);
        if tokio::time::timeout(grace, ctx.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not close within the grace period");
            // Plain TCP sockets still not taking their close are dropped now: the keepalive task
            // that would drop them later stops with the server.
            for app in ctx.hub.apps() {
                app.connections().for_each_live(Outbox::abort);
            }
        }
        ctx.hub.adapter().flush().await;
        ctx.webhooks.finish(Duration::from_secs(ctx.config.webhooks.shutdown_grace_seconds)).await;
        background.abort();
        served
    }
}

/// Turns `/ready` to 503 and keeps serving for `shutdown_drain_seconds` (or until `again`), then
/// begins the shutdown proper.
async fn drain(ctx: &Context, again: impl Future<Output = ()>) {
    ctx.begin_drain();
    let delay = ctx.config.shutdown_drain_seconds;
    if delay > 0 {
        tracing::info!(seconds = delay, "not ready; still serving until the drain delay ends");
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(delay)) => {}
            () = again => tracing::info!("second signal: ending the drain delay"),
            () = ctx.shutdown.cancelled() => {}
        }
    }
    tracing::info!("closing the listener and disconnecting clients (4200)");
    ctx.begin_shutdown();
}

/// Accepts connections on the main port (through TLS when `tls` is set) and serves each: its first
/// request head is read directly (see [`serve_tcp`]), the rest with hyper's HTTP/1.1 connection
/// (what `axum::serve` does, minus its protocol sniffing layer), so that an upgraded WebSocket
/// hands back the bare stream. Once `until` resolves: stops accepting, lets every connection
/// finish its current request, and returns when all have.
async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    ctx: Context,
    app: Router,
    until: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let ctx = Arc::new(ctx);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut until = std::pin::pin!(until);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Per-connection failures are retried at once; running out of descriptors or
                    // memory is given a moment.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut until => break,
        };
        match &tls {
            None => tokio::spawn(serve_tcp(tcp, ctx.clone(), app.clone(), stop_rx.clone())),
            Some(tls) => tokio::spawn(serve_tls(tls.clone(), tcp, ctx.clone(), app.clone(), stop_rx.clone())),
        };
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    stop_tx.closed().await;
    Ok(())
}

/// Serves one plain TCP connection. Its request head is read first: a WebSocket upgrade to the
/// Pusher endpoint is answered directly (one task, one write for the `101` and the first message);
/// anything else goes to the HTTP server with the bytes read so far put back in front of the stream.
fn serve_tcp(
    tcp: TcpStream,
    ctx: Arc<Context>,
    app: Router,
    stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    // Boxed: a WebSocket's task keeps only the state of its running connection.
    let first = Box::pin(first_request(tcp, ctx, app, stop));
    async move {
        let Some((ws, _tracked)) = first.await else { return };
        ws.run().await;
    }
}

/// Reads the first request head; serves HTTP to the end, or returns a handshaken WebSocket (with
/// the token that makes shutdown wait for it).
async fn first_request(
    tcp: TcpStream,
    ctx: Arc<Context>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) -> Option<(ws::Upgraded, TaskTrackerToken)> {
    let head = first_head(ws::read_head(&tcp), &mut stop).await?;
    if let Some(up) = ws::direct_upgrade(&head, &ctx.config.path_prefix) {
        // A WebSocket is not an HTTP connection the listener waits for on shutdown, but a
        // connection task.
        // Tracked before `stop` is dropped, so shutdown always waits for one or the other.
        let tracked = ctx.tasks.token();
        drop(stop);
        return ws::handshake(&ctx, tcp, head, up).await.map(|ws| (ws, tracked));
    }
    serve_http(PrefixedStream::new(head, tcp), app, stop).await;
    None
}

/// [`serve_tcp`] through TLS: the handshake, then the first request head read directly (a
/// WebSocket upgrade answered at once, anything else served by the HTTP server).
async fn serve_tls(tls: Arc<Tls>, tcp: TcpStream, ctx: Arc<Context>, app: Router, mut stop: watch::Receiver<bool>) {
    let mut stream = tokio::select! {
        accepted = tls.accept(tcp) => match accepted {
            Some(stream) => stream,
            None => return,
        },
        _ = stop.wait_for(|s| *s) => return,
    };
    let Some(head) = first_head(ws::read_head_from(&mut stream), &mut stop).await else { return };
    if let Some(up) = ws::direct_upgrade(&head, &ctx.config.path_prefix) {
        // As for plain TCP (`first_request`).
        let _tracked = ctx.tasks.token();
        drop(stop);
        return ws::handshake_stream(&ctx, stream, head, up).await;
    }
    serve_http(PrefixedStream::new(head, stream), app, stop).await;
}

/// Waits for `read`, a connection's first request head, for at most [`HEAD_TIMEOUT`]; `None` when
/// the client left or sent nothing in time, or the server began shutting down (a connection that
/// has not sent a request yet is then closed, like an idle HTTP connection).
async fn first_head(
    read: impl Future<Output = std::io::Result<Vec<u8>>>,
    stop: &mut watch::Receiver<bool>,
) -> Option<Vec<u8>> {
    tokio::select! {
        read = tokio::time::timeout(HEAD_TIMEOUT, read) => match read {
            Ok(Ok(head)) => Some(head),
            Ok(Err(e)) => {
                tracing::trace!(error = %e, "connection ended before its request");
                None
            }
            Err(_) => {
                tracing::debug!("no request head within the timeout");
                None
            }
        },
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// Serves HTTP/1.1 on one connection until it closes or, after `stop`, its current request ends.
async fn serve_http<S>(stream: PrefixedStream<S>, app: Router, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        // The bounds of the request head read directly (longer heads or more fields: 431).
        .max_buf_size(ws::HEAD_LIMIT)
        .max_headers(ws::MAX_HEADERS)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        // The connection first: a request already read is then taken before a shutdown begins.
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More clients than tokio's default backlog of 1,024 complete their connect while none is
    /// accepted yet (when `net.core.somaxconn` allows it).
    #[tokio::test]
    async fn backlog_holds_a_burst_of_unaccepted_connections() {
        crate::fd_limit::raise();
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(128);
        let burst = (somaxconn.min(ACCEPT_BACKLOG as usize) / 2).max(64);
        let listener = listen("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::with_capacity(burst);
        for i in 0..burst {
            // A refused SYN would be resent only after a second.
            let c = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await;
            clients.push(c.unwrap_or_else(|_| panic!("connect {i} of {burst} waited")).unwrap());
        }
        for _ in 0..burst {
            tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn listen_reports_an_unresolvable_host() {
        assert!(listen("no-such-host.invalid", 0).await.is_err());
    }
}
