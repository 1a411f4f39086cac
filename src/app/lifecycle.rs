//! The process's conversation with its supervisor: `READY=1` once every listener accepts
//! connections (systemd `Type=notify`), `SIGHUP` reloads configuration and certificates
//! (`RELOADING=1` … `READY=1`), and `SIGTERM` announces `STOPPING=1` before pingora drains.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

use super::Live;

/// How long start-up waits for its own listeners to accept before giving up on `READY=1`.
const BIND_WAIT: Duration = Duration::from_secs(30);

fn notify(states: &[NotifyState<'_>]) {
    // Without NOTIFY_SOCKET (not under systemd) this is a no-op.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// pingora binds in its own runtimes after `run` starts; a successful connect to each address
/// proves the listener is up (and on an inherited socket, that it is ours).
pub(super) async fn notify_ready_when_listening(addrs: Vec<SocketAddr>) {
    let deadline = tokio::time::Instant::now() + BIND_WAIT;
    for addr in &addrs {
        loop {
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr),
            );
            if matches!(probe.await, Ok(Ok(_))) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(%addr, "listener not accepting; not reporting ready");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tracing::info!("ready");
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

pub(super) async fn reload_on_sighup(mut live: Live) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        notify(&states);
        tracing::info!("SIGHUP: reloading configuration and certificates");
        let outcome = live.reload().await;
        let m = crate::metrics::metrics();
        match outcome {
            Ok(()) => {
                m.config_reloads.with_label_values(&["ok"]).inc();
                tracing::info!("reload complete");
                notify(&[
                    NotifyState::Ready,
                    NotifyState::Status("serving (reloaded)"),
                ]);
            }
            Err(e) => {
                m.config_reloads.with_label_values(&["failed"]).inc();
                tracing::error!(error = %e, "reload failed; the previous configuration keeps serving");
                notify(&[
                    NotifyState::Ready,
                    NotifyState::Status("serving (last reload failed; see the log)"),
                ]);
            }
        }
    }
}

/// pingora's signal semantics (SIGTERM graceful, SIGINT fast, SIGQUIT upgrade) plus the
/// `STOPPING=1` notification, and an early exit once a graceful drain has nothing left.
pub(super) struct ShutdownWatch;

#[async_trait]
impl ShutdownSignalWatch for ShutdownWatch {
    async fn recv(&self) -> ShutdownSignal {
        let signal = pingora::server::UnixShutdownSignalWatch.recv().await;
        tracing::info!(?signal, "shutting down; draining in-flight requests");
        notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
        if matches!(signal, ShutdownSignal::GracefulTerminate) {
            std::thread::spawn(exit_when_drained);
        }
        signal
    }
}

/// pingora closes the listeners at once and then waits the whole grace period, busy or not.
/// Once no request is in flight there is nothing left to wait for, so a stop or restart takes
/// as long as the slowest request, not always `grace_period_seconds`. Woken by the in-flight
/// count itself ([`crate::drain`]); pingora's own grace period still bounds the wait.
fn exit_when_drained() {
    // Let pingora broadcast the shutdown so no new connection is accepted after this point.
    std::thread::sleep(Duration::from_millis(200));
    while !crate::drain::PROCESS.wait_until_idle(Duration::from_secs(3600)) {}
    tracing::info!("drained: no request in flight; exiting");
    crate::telemetry::flush();
    std::process::exit(0);
}
