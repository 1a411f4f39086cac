//! A SIGHUP reload: read the configuration and certificates again and swap a warmed generation
//! into the running listeners. Everything that blocks (files, name resolution, trust stores)
//! runs on the blocking pool: the control runtime's one worker also drives the REVA channel and
//! the key and discovery refreshes, and a slow disk or resolver must not stall them.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::generation::{Generation, build_generation, spawn_refreshers, warm};
use crate::config::Config;
use crate::proxy::Gateway;
use crate::proxy::admin::AdminService;
use crate::proxy::internal::InternalGateway;
use crate::tls::ReloadableCert;

/// Handles to swap a new generation into the running listeners.
pub(super) struct Live {
    pub(super) config_path: PathBuf,
    pub(super) config: Config,
    pub(super) public: Arc<ArcSwap<Gateway>>,
    pub(super) internal: Option<Arc<ArcSwap<InternalGateway>>>,
    pub(super) admin: Option<Arc<ArcSwap<AdminService>>>,
    pub(super) cert: Option<Arc<ReloadableCert>>,
    pub(super) refreshers: Vec<JoinHandle<()>>,
    /// Revocations and the shared store: kept across reloads.
    pub(super) control: Arc<crate::control::Control>,
}

fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.server.listen != new.server.listen {
        out.push("server.listen");
    }
    if old.server.threads != new.server.threads {
        out.push("server.threads");
    }
    if old.server.tls.is_some() != new.server.tls.is_some() {
        out.push("server.tls (on/off)");
    }
    if old.internal.as_ref().map(|i| i.listen) != new.internal.as_ref().map(|i| i.listen) {
        out.push("internal.listen");
    }
    if old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen) {
        out.push("admin.listen");
    }
    let connection_limits = |c: &Config| {
        let l = c.server.limits;
        (l.header_timeout, l.keepalive_timeout)
    };
    if connection_limits(old) != connection_limits(new) {
        out.push("server.header_timeout_ms / keepalive_timeout_seconds");
    }
    if old.server.log_json != new.server.log_json {
        out.push("server.log_format");
    }
    let store = |c: &Config| c.store.as_ref().map(|s| s.url.clone());
    if store(old) != store(new) {
        out.push("store.url");
    }
    out
}

impl Live {
    /// Re-reads the configuration file and certificates and swaps in a warmed generation. On
    /// any problem nothing changes: the running generation keeps serving.
    pub(super) async fn reload(&mut self) -> Result<(), String> {
        let path = self.config_path.clone();
        let cert = self.cert.clone();
        let control = self.control.clone();
        let (config, generation) = tokio::task::spawn_blocking(move || load(&path, cert, &control))
            .await
            .map_err(|e| format!("reload task failed: {e}"))??;
        for key in restart_only_changes(&self.config, &config) {
            tracing::warn!(
                key,
                "changed in the configuration file; applies after a restart"
            );
        }
        warm(&generation.state).await;
        crate::telemetry::set_secrets(&config);
        self.public.store(Arc::new(generation.public));
        if let (Some(slot), Some(new)) = (&self.internal, generation.internal) {
            slot.store(Arc::new(new));
        }
        if let (Some(slot), Some(new)) = (&self.admin, generation.admin) {
            slot.store(Arc::new(new));
        }
        for task in self.refreshers.drain(..) {
            task.abort();
        }
        self.refreshers = spawn_refreshers(&generation.state, &config);
        self.config = config;
        Ok(())
    }
}

/// The blocking part of a reload: the file, the certificate, the new generation. On any
/// problem nothing has changed: the running generation keeps serving.
fn load(
    path: &std::path::Path,
    cert: Option<Arc<ReloadableCert>>,
    control: &Arc<crate::control::Control>,
) -> Result<(Config, Generation), String> {
    let config = Config::load(path).map_err(|e| {
        e.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if let (Some(cert), Some(tls)) = (cert, &config.server.tls) {
        cert.reload(&tls.cert_file, &tls.key_file)?;
    }
    let generation = build_generation(&config, control).map_err(|e| e.to_string())?;
    Ok((config, generation))
}
