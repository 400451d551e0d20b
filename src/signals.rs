//! `SIGHUP` for the reloaders (JWKS files, TLS certificates): each listens on its own.

/// Receives `SIGHUP` (never fires where signals are unavailable).
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Starts listening.
    pub fn new() -> Self {
        Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next `SIGHUP`.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut()
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

impl Default for Hangup {
    fn default() -> Self {
        Self::new()
    }
}
