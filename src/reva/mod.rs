//! The REVA gateway over CS3 gRPC (reva.md §6): a small façade over the generated client that
//! puts the token in `x-access-token`, applies a deadline to every call, and folds both error
//! layers (gRPC status and CS3 `Status`) into [`RevaError`].

mod refs;

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::pb::cs3::gateway::v1beta1 as gw;
use crate::pb::cs3::gateway::v1beta1::gateway_api_client::GatewayApiClient;
use crate::pb::cs3::identity::user::v1beta1::User;
use crate::pb::cs3::rpc::v1beta1::{Code, Status};
use crate::pb::cs3::storage::provider::v1beta1 as sp;
use crate::secret::Secret;
pub use refs::{by_id, child};

/// gRPC metadata key REVA reads the token from (reva.md §1).
pub const TOKEN_HEADER: &str = "x-access-token";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevaError {
    #[error("REVA is unavailable")]
    Unavailable,
    #[error("REVA did not answer in time")]
    Timeout,
    #[error("REVA refused the token")]
    Unauthenticated,
    #[error("REVA denied access")]
    PermissionDenied,
    #[error("not found in REVA")]
    NotFound,
    #[error("already exists in REVA")]
    AlreadyExists,
    #[error("locked in REVA")]
    Locked,
    #[error("REVA error: {0}")]
    Upstream(String),
}

fn from_grpc(s: &tonic::Status) -> RevaError {
    use tonic::Code as G;
    match s.code() {
        G::Unavailable => RevaError::Unavailable,
        G::DeadlineExceeded | G::Cancelled => RevaError::Timeout,
        G::Unauthenticated => RevaError::Unauthenticated,
        G::PermissionDenied => RevaError::PermissionDenied,
        G::NotFound => RevaError::NotFound,
        other => RevaError::Upstream(format!("gRPC {other:?}")),
    }
}

fn check(status: Option<&Status>) -> Result<(), RevaError> {
    let code = status.map(|s| s.code()).unwrap_or(Code::Invalid);
    match code {
        Code::Ok => Ok(()),
        Code::NotFound => Err(RevaError::NotFound),
        Code::AlreadyExists => Err(RevaError::AlreadyExists),
        Code::Locked | Code::FailedPrecondition => Err(RevaError::Locked),
        Code::PermissionDenied => Err(RevaError::PermissionDenied),
        Code::Unauthenticated => Err(RevaError::Unauthenticated),
        Code::Unavailable => Err(RevaError::Unavailable),
        Code::DeadlineExceeded => Err(RevaError::Timeout),
        other => Err(RevaError::Upstream(format!("CS3 {}", other.as_str_name()))),
    }
}

#[derive(Clone)]
pub struct RevaClient {
    client: GatewayApiClient<Channel>,
    timeout: Duration,
}

impl RevaClient {
    /// Lazily connecting client; must be created inside a tokio runtime. An `https://` gateway
    /// is reached over TLS with the configured CAs (else the platform's) and client certificate.
    /// Settings tonic cannot use are an error naming the key, never replaced by a default.
    pub fn new(
        gateway: &url::Url,
        connect_timeout: Duration,
        timeout: Duration,
        tls: &crate::tls::ClientTls,
    ) -> Result<Self, String> {
        let mut endpoint = Endpoint::from_shared(gateway.as_str().trim_end_matches('/').to_owned())
            .map_err(|e| format!("reva.gateway: not a usable gRPC address: {e}"))?;
        if gateway.scheme() == "https" {
            let mut config = tonic::transport::ClientTlsConfig::new()
                .domain_name(gateway.host_str().unwrap_or_default());
            config = match &tls.ca_pem {
                Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity_pem {
                config = config.identity(tonic::transport::Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| format!("reva.tls: unusable TLS settings: {e}"))?;
        }
        let endpoint = endpoint
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        Ok(Self {
            client: GatewayApiClient::new(endpoint.connect_lazy()),
            timeout,
        })
    }

    fn request<T>(&self, msg: T, token: Option<&Secret>) -> Result<tonic::Request<T>, RevaError> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        if let Some(token) = token {
            let value =
                MetadataValue::try_from(token.expose()).map_err(|_| RevaError::Unauthenticated)?;
            req.metadata_mut().insert(TOKEN_HEADER, value);
        }
        Ok(req)
    }

    /// Runs one call under the deadline, so a hung REVA never hangs a request.
    async fn call<R>(
        &self,
        name: &'static str,
        fut: impl std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    ) -> Result<R, RevaError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(RevaError::Timeout),
            Ok(Err(status)) => Err(from_grpc(&status)),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        };
        let m = crate::metrics::metrics();
        m.observe_upstream("reva", name, started.elapsed());
        match &result {
            Err(RevaError::Timeout) => m.upstream_error("reva", "timeout"),
            Err(RevaError::Unavailable) => m.upstream_error("reva", "unavailable"),
            Err(RevaError::Upstream(_)) => m.upstream_error("reva", "invalid"),
            _ => {}
        }
        result
    }

    pub async fn stat(
        &self,
        token: &Secret,
        id: sp::ResourceId,
    ) -> Result<sp::ResourceInfo, RevaError> {
        self.stat_ref(
            token,
            sp::Reference {
                resource_id: Some(id),
                path: String::new(),
            },
        )
        .await
    }

    /// Stat by any reference: an id, an absolute path, or a path relative to an id.
    pub async fn stat_ref(
        &self,
        token: &Secret,
        reference: sp::Reference,
    ) -> Result<sp::ResourceInfo, RevaError> {
        let req = self.request(
            sp::StatRequest {
                r#ref: Some(reference),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self.call("Stat", client.stat(req)).await?;
        check(resp.status.as_ref())?;
        resp.info
            .ok_or_else(|| RevaError::Upstream("Stat without info".into()))
    }

    /// Creates an empty file (`TouchFile`) at `reference`.
    pub async fn touch_file(
        &self,
        token: &Secret,
        reference: sp::Reference,
    ) -> Result<(), RevaError> {
        let req = self.request(
            sp::TouchFileRequest {
                r#ref: Some(reference),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self.call("TouchFile", client.touch_file(req)).await?;
        check(resp.status.as_ref())
    }

    /// Creates a folder at `reference`.
    pub async fn create_container(
        &self,
        token: &Secret,
        reference: sp::Reference,
    ) -> Result<(), RevaError> {
        let req = self.request(
            sp::CreateContainerRequest {
                r#ref: Some(reference),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self
            .call("CreateContainer", client.create_container(req))
            .await?;
        check(resp.status.as_ref())
    }

    /// Deletes what `reference` names.
    pub async fn delete(&self, token: &Secret, reference: sp::Reference) -> Result<(), RevaError> {
        let req = self.request(
            sp::DeleteRequest {
                r#ref: Some(reference),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self.call("Delete", client.delete(req)).await?;
        check(resp.status.as_ref())
    }

    /// Moves (renames) `source` to `destination`.
    pub async fn r#move(
        &self,
        token: &Secret,
        source: sp::Reference,
        destination: sp::Reference,
    ) -> Result<(), RevaError> {
        let req = self.request(
            sp::MoveRequest {
                source: Some(source),
                destination: Some(destination),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self.call("Move", client.r#move(req)).await?;
        check(resp.status.as_ref())
    }

    /// The children of a container (all of them: WOPI has no paging).
    pub async fn list_container(
        &self,
        token: &Secret,
        id: sp::ResourceId,
    ) -> Result<Vec<sp::ResourceInfo>, RevaError> {
        let req = self.request(
            sp::ListContainerRequest {
                r#ref: Some(sp::Reference {
                    resource_id: Some(id),
                    path: String::new(),
                }),
                ..Default::default()
            },
            Some(token),
        )?;
        let mut client = self.client.clone();
        let resp = self
            .call("ListContainer", client.list_container(req))
            .await?;
        check(resp.status.as_ref())?;
        Ok(resp.infos)
    }

    /// The user's home path (`GatewayAPI/GetHome`).
    pub async fn get_home(&self, token: &Secret) -> Result<String, RevaError> {
        let req = self.request(sp::GetHomeRequest { opaque: None }, Some(token))?;
        let mut client = self.client.clone();
        let resp = self.call("GetHome", client.get_home(req)).await?;
        check(resp.status.as_ref())?;
        if resp.path.is_empty() {
            return Err(RevaError::Upstream("GetHome without path".into()));
        }
        Ok(resp.path)
    }

    /// `GatewayAPI/Authenticate` (reva.md §4); returns REVA's token and user.
    pub async fn authenticate(
        &self,
        kind: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<(Secret, Option<User>), RevaError> {
        let req = self.request(
            gw::AuthenticateRequest {
                opaque: None,
                r#type: kind.to_owned(),
                client_id: client_id.to_owned(),
                client_secret: client_secret.to_owned(),
            },
            None,
        )?;
        let mut client = self.client.clone();
        let resp = self.call("Authenticate", client.authenticate(req)).await?;
        check(resp.status.as_ref())?;
        if resp.token.is_empty() {
            return Err(RevaError::Upstream("Authenticate without token".into()));
        }
        Ok((Secret::new(resp.token), resp.user))
    }

    /// Liveness probe used by the wopiserver too: `ListAuthProviders` needs no token.
    pub async fn probe(&self) -> Result<(), RevaError> {
        let req = self.request(gw::ListAuthProvidersRequest { opaque: None }, None)?;
        let mut client = self.client.clone();
        let resp = self
            .call("ListAuthProviders", client.list_auth_providers(req))
            .await?;
        check(resp.status.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ClientTls;

    fn client(url: &str, tls: &ClientTls) -> Result<RevaClient, String> {
        let s = Duration::from_secs(1);
        RevaClient::new(&url::Url::parse(url).unwrap(), s, s, tls)
    }

    #[tokio::test]
    async fn unusable_settings_are_errors_naming_the_key_not_silent_defaults() {
        // (An address tonic refuses used to become 127.0.0.1:9142 without a word; it is an
        // error naming `reva.gateway` now, though tonic takes every http(s) URL with a host,
        // which is all the configuration lets through.)
        assert!(client("http://127.0.0.1:19000", &ClientTls::default()).is_ok());
        // Used to be logged and then ignored: the platform's roots instead of the pinned CA.
        let garbage = ClientTls {
            ca_pem: Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            identity_pem: None,
        };
        let e = client("https://reva.example.org:19000", &garbage)
            .err()
            .expect("a CA bundle TLS cannot use");
        assert!(e.starts_with("reva.tls"), "{e}");
    }
}
