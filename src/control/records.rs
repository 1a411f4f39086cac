//! What the session and lock lists hold, as the store keeps them (JSON).

use serde::{Deserialize, Serialize};

use super::revocation::file_key_of;
use crate::tokens::reva::UserClaim;

/// A WOPI lock's life without a refresh.
pub const LOCK_LIFE: u64 = 30 * 60;

/// One office session: an access token in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A digest of the token (never the token).
    pub id: String,
    /// The OIDC `sub` (or the REVA user's opaque id).
    pub user: String,
    /// `storage$space!opaque`.
    pub file: String,
    pub app: String,
    pub view_mode: String,
    pub opened: u64,
    pub last_seen: u64,
    /// The gateway replica that saw it last, and the wopiserver instance that served it.
    pub replica: String,
    pub instance: String,
}

/// A WOPI lock the gateway saw granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub file: String,
    pub lock_id: String,
    /// The holder (as [`Session::user`]), and the session that took the lock.
    pub holder: String,
    pub session: String,
    pub app: String,
    pub since: u64,
    pub refreshed: u64,
    pub expires: u64,
    pub instance: String,
    /// The holder as REVA knows them: a release acts as them (mint mode).
    pub holder_claim: UserClaim,
}

/// Two file ids name the same file (the space may be missing from one).
pub fn same_file(a: &str, b: &str) -> bool {
    file_key_of(a) == file_key_of(b)
}
