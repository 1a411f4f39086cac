//! WOPI protocol pieces the gateway checks itself: proof keys (wopi.md §10) and the parts of
//! wopiserver access tokens it may read without the wopisecret (cs3-wopiserver.md §7).

pub mod access_token;
pub mod operation;
pub mod proof;
pub mod rewrite;
