//! The wopiserver instances on pingora's side: pingora's load-balancing crate orders them by
//! Ketama consistent hash of the file and keeps their health from active probes of the
//! wopiserver's health page; [`crate::wopiserver::instances`] decides what to accept from
//! that order (not tried, not ejected) and caps each instance's concurrency. Both listeners
//! and the open flow choose through the same [`Pool`], so a file's open call and its WOPI
//! traffic meet on one instance, in every gateway replica alike (the ring depends only on
//! the configured addresses).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::selection::consistent::KetamaHashing;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::{Error, ErrorType};
use url::Url;

use super::upstream::{self, Upstream};
use crate::wopi::operation::WopiOperation;
use crate::wopiserver::instances::{Instances, Ring, Slot, Tried, affinity_key};

/// The instance index carried in a pingora [`Backend`].
#[derive(Clone, Copy)]
struct Index(usize);

fn index_of(b: &Backend) -> Option<usize> {
    b.ext.get::<Index>().map(|i| i.0)
}

/// pingora's Ketama ring over the instances.
struct KetamaRing(Arc<LoadBalancer<KetamaHashing>>);

impl Ring for KetamaRing {
    fn first(&self, key: &[u8], accept: &dyn Fn(usize, bool) -> bool) -> Option<usize> {
        // Each backend has 160 points on the ring; this bounds the walk to all of them.
        let steps = 160 * self.0.backends().get_backend().len().max(1);
        self.0
            .select_with(key, steps, |b, healthy| {
                index_of(b).is_some_and(|i| accept(i, healthy))
            })
            .as_ref()
            .and_then(index_of)
    }
}

/// The active probe: `GET /wopi` and its `Health status` line.
struct Probe {
    instances: Vec<(String, Url)>,
    http: reqwest::Client,
    healthy_after: usize,
    unhealthy_after: usize,
}

#[async_trait]
impl HealthCheck for Probe {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let Some((_, base)) = index_of(target).and_then(|i| self.instances.get(i)) else {
            return Error::e_explain(ErrorType::InternalError, "unknown backend");
        };
        crate::wopiserver::health::probe(&self.http, base)
            .await
            .map(drop)
            .map_err(|why| Error::explain(ErrorType::Custom("health check failed"), why))
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let Some((name, _)) = index_of(target).and_then(|i| self.instances.get(i)) else {
            return;
        };
        let m = crate::metrics::metrics();
        m.instance_healthy
            .with_label_values(&[name])
            .set(healthy as i64);
        if healthy {
            tracing::info!(wopiserver = %name, "wopiserver instance healthy again");
        } else {
            m.instance_ejections
                .with_label_values(&[name, "health_check"])
                .inc();
            tracing::warn!(wopiserver = %name, "wopiserver instance failed its health checks; out of rotation");
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        index_of(target)
            .and_then(|i| self.instances.get(i))
            .map_or_else(|| "wopiserver instance".into(), |(n, _)| n.clone())
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_after
        } else {
            self.unhealthy_after
        }
    }
}

/// The instances with their pingora peers, and the health loop to run beside them.
pub struct Pool {
    pub instances: Arc<Instances>,
    /// Index-aligned with `instances`.
    pub upstreams: Arc<[Upstream]>,
    lb: Arc<LoadBalancer<KetamaHashing>>,
    interval: Duration,
}

impl Pool {
    /// `upstreams` are the resolved instances in configuration order.
    pub fn new(
        c: &crate::config::Wopiserver,
        upstreams: Vec<Upstream>,
        probe_http: reqwest::Client,
    ) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for (i, u) in upstreams.iter().enumerate() {
            let mut b = Backend {
                addr: SocketAddr::Inet(u.addr),
                weight: 1,
                ext: Default::default(),
            };
            b.ext.insert(Index(i));
            if !set.insert(b) {
                return Err(format!(
                    "wopiserver.instances: {} and another instance resolve to {}",
                    c.instances[i].name, u.addr
                ));
            }
        }
        let mut lb = LoadBalancer::<KetamaHashing>::from_backends(Backends::new(Static::new(set)));
        lb.set_health_check(Box::new(Probe {
            instances: c
                .instances
                .iter()
                .map(|x| (x.name.clone(), x.url.clone()))
                .collect(),
            http: probe_http,
            healthy_after: c.health_check.healthy_after,
            unhealthy_after: c.health_check.unhealthy_after,
        }));
        match lb.update().now_or_never() {
            Some(Ok(())) => {}
            _ => return Err("wopiserver.instances: the ring could not be built".into()),
        }
        let lb = Arc::new(lb);
        let list: Vec<_> = c
            .instances
            .iter()
            .map(|x| {
                crate::metrics::metrics()
                    .instance_healthy
                    .with_label_values(&[&x.name])
                    .set(1);
                crate::wopiserver::instances::Instance::new(
                    x.name.clone(),
                    x.url.clone(),
                    c.capacity.max_in_flight,
                )
            })
            .collect();
        let instances = Arc::new(Instances::new(
            list.into(),
            Box::new(KetamaRing(lb.clone())),
            c.capacity,
            c.eject_for,
        ));
        Ok(Self {
            instances,
            upstreams: upstreams.into(),
            lb,
            interval: c.health_check.interval,
        })
    }

    /// Probes every instance each interval, for as long as the future runs (a replaced
    /// configuration aborts it).
    pub fn health_loop(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let lb = self.lb.clone();
        let every = self.interval;
        async move {
            loop {
                lb.backends().run_health_check(true).await;
                tokio::time::sleep(every).await;
            }
        }
    }

    /// Whether instance `i` passes its health checks now (pingora's verdict).
    pub fn healthy(&self, i: usize) -> bool {
        self.lb
            .backends()
            .get_backend()
            .iter()
            .find(|b| index_of(b) == Some(i))
            .is_some_and(|b| self.lb.backends().ready(b))
    }
}

/// One request's way through the pool: its key, the instances it tried, the one it is on and
/// that instance's concurrency slot (held until the request's context is dropped).
#[derive(Default)]
pub struct Attempt {
    key: Option<String>,
    tried: Tried,
    pub instance: Option<usize>,
    slot: Option<Slot>,
}

/// The pingora error for "every instance that could take it is at its cap" (503 + Retry-After).
pub const BUSY: ErrorType = ErrorType::Custom("wopiserver busy");

/// The affinity key of a proxied path: the file a `/wopi/files/<id>` path names (either token
/// kind's id, percent-decoded), else the path itself.
pub fn key_of_path(path: &str) -> String {
    crate::ids::file_id_of_path(path)
        .map(|id| percent_encoding::percent_decode_str(id).decode_utf8_lossy())
        .and_then(|id| crate::ids::resource_of_path_id(&id))
        .map_or_else(
            || path.to_owned(),
            |r| affinity_key(&r.storage_id, &r.opaque_id),
        )
}

impl Attempt {
    /// The peer for this attempt: the next instance in the file's order, with a slot of its
    /// own (the previous attempt's slot is given back first).
    pub async fn peer(&mut self, pool: &Pool, path: &str) -> pingora::Result<Box<HttpPeer>> {
        let key = self.key.get_or_insert_with(|| key_of_path(path));
        let no_instance = || {
            Error::explain(
                ErrorType::ConnectRefused,
                "no wopiserver instance left to try",
            )
        };
        let i = pool
            .instances
            .choose(key.as_bytes(), self.tried)
            .ok_or_else(no_instance)?;
        let (Some(instance), Some(u)) = (pool.instances.get(i), pool.upstreams.get(i)) else {
            return Err(no_instance());
        };
        self.instance = Some(i);
        self.slot = None;
        self.slot = Some(
            instance
                .acquire(&pool.instances.capacity)
                .await
                .map_err(|_| Error::explain(BUSY, "wopiserver instance at its cap"))?,
        );
        Ok(upstream::peer(u))
    }

    /// The instance refused the connection (or its TLS handshake failed): nothing of the
    /// request went upstream, so any request moves to the next instance while one is left.
    /// The refusing instance is ejected for `wopiserver.eject_seconds`.
    pub fn connect_failed(&mut self, pool: &Pool, mut e: Box<Error>) -> Box<Error> {
        if let Some(i) = self.instance {
            self.tried.add(i);
            pool.instances.eject(i);
            let left = self
                .key
                .as_ref()
                .and_then(|k| pool.instances.choose(k.as_bytes(), self.tried));
            if left.is_some()
                && let Some(x) = pool.instances.get(i)
            {
                crate::metrics::metrics()
                    .instance_failovers
                    .with_label_values(&[&x.name])
                    .inc();
                e.set_retry(true);
            }
        }
        e
    }

    /// The upstream the current attempt talks to (for `Host`).
    pub fn upstream<'a>(&self, pool: &'a Pool) -> Option<&'a Upstream> {
        self.instance.and_then(|i| pool.upstreams.get(i))
    }
}

/// Whether a request that failed after its connection was made may be sent again: only reads
/// (pingora retries them on a pooled connection that turned out dead). Anything that changes
/// a file or its lock is never replayed once a byte went upstream; it gets a clean 502.
pub fn replay_allowed(op: Option<WopiOperation>) -> bool {
    use WopiOperation as W;
    matches!(
        op,
        Some(
            W::CheckFileInfo
                | W::GetFile
                | W::GetLock
                | W::CheckContainerInfo
                | W::EnumerateChildren
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_token_kinds_of_one_file_share_a_key() {
        use crate::ids::{Resource, inode_of, path_id_of};
        let r = Resource {
            storage_id: "st-1".into(),
            space_id: "sp".into(),
            opaque_id: "file/a b".into(),
        };
        let want = affinity_key("st-1", "file/a b");
        let inode = inode_of(&r);
        assert_eq!(key_of_path(&format!("/wopi/files/{inode}")), want);
        let encoded = inode.replace('!', "%21").replace('=', "%3D");
        assert_eq!(
            key_of_path(&format!("/wopi/files/{encoded}/contents")),
            want
        );
        assert_eq!(
            key_of_path(&format!("/wopi/files/{}", path_id_of(&r))),
            want
        );
        assert_eq!(key_of_path("/wopi/iop/list"), "/wopi/iop/list");
    }

    #[test]
    fn only_reads_are_replayed() {
        assert!(replay_allowed(Some(WopiOperation::GetFile)));
        assert!(replay_allowed(Some(WopiOperation::CheckFileInfo)));
        for op in [
            WopiOperation::PutFile,
            WopiOperation::Lock,
            WopiOperation::Unlock,
            WopiOperation::RefreshLock,
            WopiOperation::PutRelativeFile,
            WopiOperation::RenameFile,
            WopiOperation::DeleteFile,
        ] {
            assert!(!replay_allowed(Some(op)), "{op:?}");
        }
        assert!(!replay_allowed(None));
    }
}
