//! Shutdown signals for `serve`: SIGTERM and SIGINT counted, so the first starts the drain
//! and the second ends it at once.

use tokio::sync::watch;

/// Counts SIGTERM and SIGINT (Ctrl-C) from now on: the first starts the drain, the second
/// ends it at once. A signal whose handler cannot be installed keeps its default action
/// (the process ends at once), which is logged.
pub(super) fn shutdown_signals() -> watch::Receiver<u32> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle {name}; it will end the gateway without draining");
            None
        }
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM");
    let mut int = install(SignalKind::interrupt(), "SIGINT");
    let (count, signals) = watch::channel(0);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = next_signal(&mut term) => "SIGTERM",
                Some(()) = next_signal(&mut int) => "SIGINT",
                // Both streams end only when the runtime shuts down; nothing is left to count.
                else => return,
            };
            let received = *count.borrow() + 1;
            if received == 1 {
                tracing::info!(signal = name, "shutting down: draining connections (a second signal exits at once)");
            } else {
                tracing::warn!(signal = name, "second signal: exiting without waiting for the drain");
            }
            count.send_replace(received);
        }
    });
    signals
}

/// The next delivery of `signal`; never, when its handler is not installed.
async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes once `signals` has counted `n` shutdown signals.
pub(super) async fn signal_count(mut signals: watch::Receiver<u32>, n: u32) {
    if signals.wait_for(|&count| count >= n).await.is_err() {
        // The counting task never ends while the runtime runs; should it, no signal comes.
        std::future::pending::<()>().await;
    }
}
