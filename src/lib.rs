//! wopigate: an OpenID Connect-aware WOPI gateway in front of the CS3 WOPI server and REVA.
//!
//! # Layering
//! A module uses only modules of its own layer or of a layer below, and modules of one layer
//! never form a cycle (production code; tests may use anything to build their fixtures).
//! `tests/layering.rs` reads this list and checks the code against it.
//!
//! 0. foundations: `secret`, `ids`, `pb`, `metrics`, `memory`, `drain`, `tls`, `http_client`, `config`, `rate`
//! 1. protocols: `tokens`, `wopi`
//! 2. clients and identity: `auth`, `reva`, `exchange`, `wopiserver`, `discovery`, `telemetry`, `backends`, `control`
//! 3. client-facing errors: `error`
//! 4. flows: `open`, `wopi_call`, `mobile`, `iop`, `admin`, `backchannel`
//! 5. the HTTP edge: `proxy`
//! 6. the process: `app`, `cli`
//!
//! The test doubles live in their own crate (`testkit/`), which may use everything public here.
//!
//! # Citations
//! Comments cite the contracts by file and section: a bare `wopi.md §4.4` (likewise
//! `cs3-wopiserver.md`, `reva.md`, `security.md`, `peers.md`) is `docs/spec/` in this
//! repository, `style.md` is `docs/style.md`; other paths are from the repository root.
//! `tests/citations.rs` fails on a citation of a document that does not exist.
//!
//! # Layout
//! - [`secret`] (secrets as a type), [`ids`] (every resource id form), [`pb`] (generated CS3),
//!   [`metrics`], [`memory`] (memory handed back after connection bursts), [`drain`] (requests
//!   in flight), [`tls`], [`http_client`], [`config`] (file
//!   mirror → validation → typed configuration), [`rate`] (rate limits per user and client).
//! - [`tokens`]: where tokens travel (`access_token`, `Authorization`) and every token format:
//!   gateway tokens and the wopiserver tokens remembered behind them, REVA tokens, the
//!   wopiserver token's readable claims, the swap between gateway and wopiserver tokens.
//! - [`wopi`]: the URL table with each request's WOPI operation, view modes, and proof keys.
//! - [`auth`] (OIDC validation, JWKS), [`reva`] (CS3 gRPC), [`exchange`] (OIDC → REVA token),
//!   [`wopiserver`] (`openinapp` client, the instances and their capacity), [`discovery`] (office discovery cache),
//!   [`telemetry`] (logging with redaction), [`backends`] (all of them, shared by the flows),
//!   [`control`] (revocations and the store replicas share them through).
//! - [`error`]: the client-facing error, the one reply type, every module error mapped once.
//! - [`open`] (the open flow shared by both open APIs), [`wopi_call`] (the proxied WOPI call:
//!   admission, the answer plan, gateway-token renewal, Save As), [`mobile`] (Office for
//!   iOS/Android from REVA), [`iop`] (the internal IOP API's rules), [`admin`] (the admin
//!   API: sessions, locks, revocations, releasing a lock), [`backchannel`] (OIDC back-channel
//!   logout).
//! - [`proxy`]: pingora's side — the listeners' `ProxyHttp`s with phases that only dispatch,
//!   and the connection layer below HTTP (`proxy::conn`); `docs/architecture.md` follows a call
//!   through the layers.
//! - [`cli`], [`app`]: start-up; `app` alone knows every part and builds pingora's server.
// The exceptions, with their reasons, are in `memory` (two libc calls to glibc's allocator).
#![deny(unsafe_code)]
// No unwrap, expect or panic outside tests: a request path answers with an error instead.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod backchannel;
pub mod backends;
pub mod cli;
pub mod config;
pub mod control;
pub mod discovery;
pub mod drain;
pub mod error;
pub mod exchange;
pub mod http_client;
pub mod ids;
pub mod iop;
pub mod memory;
pub mod metrics;
pub mod mobile;
pub mod open;
pub mod proxy;
pub mod rate;
pub mod reva;
pub mod secret;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod wopi;
pub mod wopi_call;
pub mod wopiserver;

/// Generated CS3 messages and the `GatewayAPI` client and server.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/cs3.rs"));
}
