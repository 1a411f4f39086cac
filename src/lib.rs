//! wopigate: an OpenID Connect-aware WOPI gateway in front of the CS3 WOPI server and REVA.
//!
//! # Layout
//! Dependencies point down (style.md principle 4):
//! - [`cli`], [`app`]: start-up; `app` alone knows every part and builds pingora's server.
//! - [`proxy`]: the public listener's `ProxyHttp` (routing, forwarding headers, JSON answers).
//! - [`open`]: the open flow shared by `/api/v0/wopi/open` and `/app/open`.
//! - [`auth`] (OIDC validation, JWKS), [`exchange`] (OIDC → REVA token), [`reva`] (CS3 gRPC),
//!   [`wopiserver`] (`openinapp` client), [`discovery`] (office discovery cache).
//! - [`config`], [`secret`], [`error`], [`http_client`], [`telemetry`]: foundations.
//! - `testkit` (feature `testkit`): the test doubles, speaking the real protocols.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod drain;
pub mod error;
pub mod exchange;
pub mod http_client;
pub mod ids;
pub mod iop;
pub mod metrics;
pub mod mobile;
pub mod open;
pub mod proxy;
pub mod reva;
pub mod secret;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod wopi;
pub mod wopiserver;

#[cfg(feature = "testkit")]
pub mod testkit;

/// Generated CS3 messages and the `GatewayAPI` client and server.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/cs3.rs"));
}
