//! Fake REVA gateway: a real tonic server for `cs3.gateway.v1beta1.GatewayAPI` that checks
//! `x-access-token` like REVA (HS256 with its secret, `exp`) and records every call with the
//! decoded claims.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::Running;
use super::tree::Tree;
use wopigate::pb::cs3::gateway::v1beta1 as gw;
use wopigate::pb::cs3::gateway::v1beta1::gateway_api_server::{GatewayApi, GatewayApiServer};
use wopigate::pb::cs3::identity::user::v1beta1 as user;
use wopigate::pb::cs3::rpc::v1beta1::{Code, Status as CsStatus};
use wopigate::pb::cs3::storage::provider::v1beta1 as sp;
use wopigate::tokens::reva::{self, RevaClaims, UserClaim};

/// One call REVA received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    /// The `x-access-token` value, as sent.
    pub token: Option<String>,
    /// Its claims, when it verified.
    pub claims: Option<RevaClaims>,
    /// Stat: the resource asked for.
    pub resource: Option<sp::ResourceId>,
    /// Authenticate: (type, client_secret).
    pub authenticate: Option<(String, String)>,
}

/// Turns an `Authenticate` client secret into a user, or refuses it.
pub type Authenticator = Arc<dyn Fn(&str, &str) -> Option<UserClaim> + Send + Sync>;

struct Inner {
    secret: String,
    tree: Tree,
    calls: Mutex<Vec<Call>>,
    authenticator: Option<Authenticator>,
    delay: Mutex<Duration>,
    /// Names whose next Stat by folder and name answers UNAVAILABLE.
    stat_failures: Mutex<Vec<String>>,
    /// Stats still answered before every Stat answers UNAVAILABLE (`None`: no outage).
    stat_outage_after: Mutex<Option<usize>>,
}

#[derive(Clone)]
pub struct FakeReva {
    inner: Arc<Inner>,
}

fn status(code: Code, msg: &str) -> Option<CsStatus> {
    Some(CsStatus {
        code: code as i32,
        message: msg.into(),
        ..Default::default()
    })
}

impl FakeReva {
    pub fn new(secret: &str, tree: Tree, authenticator: Option<Authenticator>) -> Self {
        Self {
            inner: Arc::new(Inner {
                secret: secret.into(),
                tree,
                calls: Mutex::new(Vec::new()),
                authenticator,
                delay: Mutex::new(Duration::ZERO),
                stat_failures: Mutex::new(Vec::new()),
                stat_outage_after: Mutex::new(None),
            }),
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.inner.calls.lock().unwrap().clear();
    }

    /// Makes the next Stat of `name` by folder and name (`./name`) fail as a REVA that went
    /// away between two calls of one request.
    pub fn fail_next_stat_of(&self, name: &str) {
        self.inner
            .stat_failures
            .lock()
            .unwrap()
            .push(name.to_owned());
    }

    /// REVA goes down for Stat after answering `n` more (a restart beginning between two
    /// calls of one open); `None` ends the outage.
    pub fn stat_outage_after(&self, n: Option<usize>) {
        *self.inner.stat_outage_after.lock().unwrap() = n;
    }

    /// Makes every call wait this long first (deadline tests).
    pub fn set_delay(&self, d: Duration) {
        *self.inner.delay.lock().unwrap() = d;
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        let svc = GatewayApiServer::new(self.clone());
        Running::spawn(addr, |listener, stop| async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(tokio_stream_from(listener), async {
                    let _ = stop.await;
                })
                .await;
        })
        .await
    }

    /// Over TLS (gRPC over h2 + TLS); with `client_ca_pem`, a client certificate from that CA is
    /// required.
    pub async fn serve_tls(
        &self,
        addr: SocketAddr,
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> std::io::Result<Running> {
        wopigate::http_client::install_crypto_provider();
        let svc = GatewayApiServer::new(self.clone());
        let mut tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
        if let Some(ca) = client_ca_pem {
            tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        let builder = tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(std::io::Error::other)?;
        Running::spawn(addr, |listener, stop| async move {
            let mut builder = builder;
            let _ = builder
                .add_service(svc)
                .serve_with_incoming_shutdown(tokio_stream_from(listener), async {
                    let _ = stop.await;
                })
                .await;
        })
        .await
    }

    /// Verifies a REVA token like REVA's JWT manager: HS256 only, signature, `exp`.
    pub fn verify(&self, token: &str) -> Option<RevaClaims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_aud = false;
        v.leeway = 0;
        jsonwebtoken::decode::<RevaClaims>(
            token,
            &DecodingKey::from_secret(self.inner.secret.as_bytes()),
            &v,
        )
        .ok()
        .map(|d| d.claims)
    }

    fn record(&self, call: Call) {
        self.inner.calls.lock().unwrap().push(call);
    }

    async fn pause(&self) {
        let d = *self.inner.delay.lock().unwrap();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// The interceptor: a valid token or `UNAUTHENTICATED`.
    fn authenticated<T>(
        &self,
        method: &'static str,
        req: &Request<T>,
        resource: Option<sp::ResourceId>,
    ) -> Result<RevaClaims, Status> {
        let token = req
            .metadata()
            .get(wopigate::reva::TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let claims = token.as_deref().and_then(|t| self.verify(t));
        if let Some(t) = &token {
            super::hygiene::register("REVA token (x-access-token)", t);
        }
        self.record(Call {
            method,
            token: token.clone(),
            claims: claims.clone(),
            resource,
            authenticate: None,
        });
        claims.ok_or_else(|| Status::unauthenticated("core access token not found or invalid"))
    }
}

fn tokio_stream_from(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

/// What a CS3 reference names: an absolute path, or a path relative to a resource id.
enum Target {
    Existing(super::tree::Entry),
    /// Not there (yet): the parent folder and the last name.
    New(super::tree::Entry, String),
    Missing,
}

impl FakeReva {
    fn target(&self, r: &sp::Reference) -> Target {
        let tree = &self.inner.tree;
        let full = match (&r.resource_id, r.path.as_str()) {
            (_, p) if p.starts_with('/') => p.to_owned(),
            (Some(id), "" | ".") => {
                return tree.get(id).map_or(Target::Missing, Target::Existing);
            }
            (Some(id), rel) => match (tree.get(id), rel.strip_prefix("./")) {
                (Some(base), Some(rest)) => format!("{}/{rest}", base.path),
                _ => return Target::Missing,
            },
            _ => return Target::Missing,
        };
        if let Some(e) = tree.get_by_path(&full) {
            return Target::Existing(e);
        }
        match full.rsplit_once('/') {
            Some((parent, name)) if !name.is_empty() => match tree.get_by_path(parent) {
                Some(p) if p.container => Target::New(p, name.to_owned()),
                _ => Target::Missing,
            },
            _ => Target::Missing,
        }
    }

    /// TouchFile and CreateContainer: a new entry under an existing folder the user may
    /// write to (`initiate_file_upload` for files, `create_container` for folders).
    fn create(
        &self,
        claims: &RevaClaims,
        r: Option<&sp::Reference>,
        container: bool,
    ) -> Option<CsStatus> {
        let user = &claims.user.id.opaque_id;
        let (parent, name) = match r.map(|r| self.target(r)) {
            Some(Target::New(p, n)) => (p, n),
            Some(Target::Existing(_)) => {
                return status(Code::AlreadyExists, "resource already exists");
            }
            _ => return status(Code::NotFound, "parent not found"),
        };
        let perms = parent.perms_for(user);
        let allowed = if container {
            perms.create_container
        } else {
            perms.initiate_file_upload
        };
        if !perms.stat {
            return status(Code::NotFound, "parent not found");
        }
        if !allowed {
            return status(Code::PermissionDenied, "permission denied");
        }
        let id = sp::ResourceId {
            storage_id: parent.id.storage_id.clone(),
            opaque_id: uuid::Uuid::new_v4().to_string(),
            space_id: parent.id.space_id.clone(),
        };
        self.inner.tree.insert(super::tree::Entry {
            id,
            parent: Some(parent.id.clone()),
            path: format!("{}/{name}", parent.path),
            name,
            container,
            content: super::tree::Content::Bytes(Vec::new()),
            version: 1,
            perms: parent.perms.clone(),
            default_perms: parent.default_perms,
        });
        status(Code::Ok, "")
    }
}

fn resource_of(r: Option<&sp::Reference>) -> Option<sp::ResourceId> {
    r.and_then(|r| r.resource_id.clone())
}

fn to_user(u: &UserClaim) -> user::User {
    user::User {
        id: Some(user::UserId {
            idp: u.id.idp.clone(),
            opaque_id: u.id.opaque_id.clone(),
            r#type: u.id.user_type,
            tenant_id: String::new(),
        }),
        username: u.username.clone(),
        mail: u.mail.clone(),
        display_name: u.display_name.clone(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl GatewayApi for FakeReva {
    async fn authenticate(
        &self,
        req: Request<gw::AuthenticateRequest>,
    ) -> Result<Response<gw::AuthenticateResponse>, Status> {
        self.pause().await;
        let r = req.into_inner();
        self.record(Call {
            method: "Authenticate",
            token: None,
            claims: None,
            resource: None,
            authenticate: Some((r.r#type.clone(), r.client_secret.clone())),
        });
        let user = self
            .inner
            .authenticator
            .as_ref()
            .and_then(|f| f(&r.r#type, &r.client_secret));
        let Some(u) = user else {
            return Ok(Response::new(gw::AuthenticateResponse {
                status: status(Code::Unauthenticated, "invalid credentials"),
                ..Default::default()
            }));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = reva::mint(
            &EncodingKey::from_secret(self.inner.secret.as_bytes()),
            &u,
            Duration::from_secs(86400),
            now,
        )
        .map_err(|_| Status::internal("mint"))?;
        Ok(Response::new(gw::AuthenticateResponse {
            status: status(Code::Ok, ""),
            opaque: None,
            token: token.token.expose().to_owned(),
            user: Some(to_user(&u)),
        }))
    }

    async fn who_am_i(
        &self,
        req: Request<gw::WhoAmIRequest>,
    ) -> Result<Response<gw::WhoAmIResponse>, Status> {
        self.pause().await;
        let claims = self.authenticated("WhoAmI", &req, None)?;
        Ok(Response::new(gw::WhoAmIResponse {
            status: status(Code::Ok, ""),
            opaque: None,
            user: Some(to_user(&claims.user)),
        }))
    }

    async fn list_auth_providers(
        &self,
        _req: Request<gw::ListAuthProvidersRequest>,
    ) -> Result<Response<gw::ListAuthProvidersResponse>, Status> {
        self.pause().await;
        Ok(Response::new(gw::ListAuthProvidersResponse {
            status: status(Code::Ok, ""),
            opaque: None,
            types: vec!["basic".into(), "bearer".into()],
        }))
    }

    async fn stat(
        &self,
        req: Request<sp::StatRequest>,
    ) -> Result<Response<sp::StatResponse>, Status> {
        self.pause().await;
        let reference = req.get_ref().r#ref.clone().unwrap_or_default();
        let id = resource_of(Some(&reference));
        let claims = self.authenticated("Stat", &req, id.clone())?;
        {
            let mut failures = self.inner.stat_failures.lock().unwrap();
            let named = reference.path.strip_prefix("./");
            if let Some(i) = failures.iter().position(|n| Some(n.as_str()) == named) {
                failures.remove(i);
                return Err(Status::unavailable("REVA went away"));
            }
            match &mut *self.inner.stat_outage_after.lock().unwrap() {
                Some(0) => return Err(Status::unavailable("REVA is restarting")),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        // By id, by absolute path, or by a path relative to an id (`./name`).
        let entry = match self.target(&reference) {
            Target::Existing(e) => Some(e),
            _ => None,
        };
        let resp = match entry {
            None => sp::StatResponse {
                status: status(Code::NotFound, "resource not found"),
                ..Default::default()
            },
            // Like REVA, a resource the user has no permission on is refused, not described.
            Some(e) if !e.perms_for(&claims.user.id.opaque_id).stat => sp::StatResponse {
                status: status(Code::PermissionDenied, "permission denied"),
                ..Default::default()
            },
            Some(e) => sp::StatResponse {
                status: status(Code::Ok, ""),
                opaque: None,
                info: Some(e.info_for(&claims.user.id.opaque_id)),
            },
        };
        Ok(Response::new(resp))
    }

    async fn get_home(
        &self,
        req: Request<sp::GetHomeRequest>,
    ) -> Result<Response<sp::GetHomeResponse>, Status> {
        self.pause().await;
        self.authenticated("GetHome", &req, None)?;
        // One shared home folder in the fake tree (REVA answers per user).
        Ok(Response::new(sp::GetHomeResponse {
            status: status(Code::Ok, ""),
            opaque: None,
            path: "/home".into(),
        }))
    }

    async fn list_container(
        &self,
        req: Request<sp::ListContainerRequest>,
    ) -> Result<Response<sp::ListContainerResponse>, Status> {
        self.pause().await;
        let id = resource_of(req.get_ref().r#ref.as_ref());
        let claims = self.authenticated("ListContainer", &req, id.clone())?;
        let Some(parent) = id.and_then(|id| self.inner.tree.get(&id)) else {
            return Ok(Response::new(sp::ListContainerResponse {
                status: status(Code::NotFound, "resource not found"),
                ..Default::default()
            }));
        };
        let infos = self
            .inner
            .tree
            .children(&parent.id)
            .iter()
            .map(|e| e.info_for(&claims.user.id.opaque_id))
            .collect();
        Ok(Response::new(sp::ListContainerResponse {
            status: status(Code::Ok, ""),
            opaque: None,
            infos,
            next_page_token: String::new(),
        }))
    }

    async fn touch_file(
        &self,
        req: Request<sp::TouchFileRequest>,
    ) -> Result<Response<sp::TouchFileResponse>, Status> {
        self.pause().await;
        let r = req.get_ref().r#ref.clone();
        let claims = self.authenticated("TouchFile", &req, resource_of(r.as_ref()))?;
        Ok(Response::new(sp::TouchFileResponse {
            status: self.create(&claims, r.as_ref(), false),
            opaque: None,
        }))
    }

    async fn create_container(
        &self,
        req: Request<sp::CreateContainerRequest>,
    ) -> Result<Response<sp::CreateContainerResponse>, Status> {
        self.pause().await;
        let r = req.get_ref().r#ref.clone();
        let claims = self.authenticated("CreateContainer", &req, resource_of(r.as_ref()))?;
        Ok(Response::new(sp::CreateContainerResponse {
            status: self.create(&claims, r.as_ref(), true),
            opaque: None,
        }))
    }

    /// Deletes (recursively, like REVA) what the user has `delete` permission on.
    async fn delete(
        &self,
        req: Request<sp::DeleteRequest>,
    ) -> Result<Response<sp::DeleteResponse>, Status> {
        self.pause().await;
        let r = req.get_ref().r#ref.clone().unwrap_or_default();
        let claims = self.authenticated("Delete", &req, r.resource_id.clone())?;
        let st = match self.target(&r) {
            Target::Existing(e) if !e.perms_for(&claims.user.id.opaque_id).stat => {
                status(Code::NotFound, "resource not found")
            }
            Target::Existing(e) if !e.perms_for(&claims.user.id.opaque_id).delete => {
                status(Code::PermissionDenied, "permission denied")
            }
            Target::Existing(e) => {
                self.inner.tree.remove(&e.id);
                status(Code::Ok, "")
            }
            _ => status(Code::NotFound, "resource not found"),
        };
        Ok(Response::new(sp::DeleteResponse {
            status: st,
            opaque: None,
        }))
    }

    /// Renames within the same folder (all WOPI asks for): `move` permission on the source, the
    /// destination name free.
    async fn r#move(
        &self,
        req: Request<sp::MoveRequest>,
    ) -> Result<Response<sp::MoveResponse>, Status> {
        self.pause().await;
        let m = req.get_ref().clone();
        let source = m.source.unwrap_or_default();
        let claims = self.authenticated("Move", &req, source.resource_id.clone())?;
        let user = &claims.user.id.opaque_id;
        let st = match (
            self.target(&source),
            m.destination.as_ref().map(|d| self.target(d)),
        ) {
            (Target::Existing(e), _) if !e.perms_for(user).stat => {
                status(Code::NotFound, "resource not found")
            }
            (Target::Existing(e), _) if !e.perms_for(user).r#move => {
                status(Code::PermissionDenied, "permission denied")
            }
            (Target::Existing(_), Some(Target::Existing(_))) => {
                status(Code::AlreadyExists, "destination exists")
            }
            (Target::Existing(e), Some(Target::New(parent, name)))
                if Some(&parent.id) == e.parent.as_ref() =>
            {
                self.inner.tree.rename(&e.id, &name);
                status(Code::Ok, "")
            }
            (Target::Existing(_), _) => status(Code::Unimplemented, "only renames in place"),
            _ => status(Code::NotFound, "resource not found"),
        };
        Ok(Response::new(sp::MoveResponse {
            status: st,
            opaque: None,
        }))
    }
}
