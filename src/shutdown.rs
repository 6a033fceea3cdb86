//! The shutdown sequence, passed down explicitly (as in mini-redis).
//!
//! 1. SIGTERM or SIGINT arrives ([`wait_for_signal`]) and [`Shutdown::trigger`]
//!    is called: `/readyz` reports not ready from now on.
//! 2. Every listener stops accepting and asks its open connections to finish
//!    (HTTP/1 keep-alive ends after the in-flight response; HTTP/2 sends GOAWAY).
//! 3. In-flight responses get `--shutdown-grace` to complete; then the
//!    process exits 0 either way.

use tokio::sync::watch;

/// A cloneable handle on the process's draining state.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            tx: watch::Sender::new(false),
        }
    }

    /// Start draining. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once draining has started.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|draining| *draining).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
