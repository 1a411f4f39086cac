//! What a proxied call tells the operator's control point once it is answered: the session
//! is in use (on which wopiserver instance), and a lock the wopiserver granted or released.

use crate::control::activity::{Activity, LockChange, Seen};
use crate::ids::file_id_text;
use crate::tokens::reva::UserClaim;
use crate::wopi::operation::WopiOperation;

use super::Admitted;

/// The request as answered, for [`Admitted::record`].
pub struct Answered<'a> {
    pub operation: WopiOperation,
    pub status: u16,
    /// The request's `X-WOPI-Lock`.
    pub lock: Option<&'a str>,
    /// The request's query (its `access_token`), read again only for a lock change.
    pub query: Option<&'a str>,
    /// The wopiserver instance that answered.
    pub instance: &'a str,
}

impl Admitted {
    /// Records the session's use and, on a 200 to a lock operation, the lock.
    pub fn record(&self, activity: &Activity, a: &Answered<'_>) {
        let app = self.app.as_deref().unwrap_or_default();
        let (token, user, file, view_mode) = match (&self.gateway, &self.pass_through) {
            (Some(g), _) => {
                let Some(f) = g.claims.file() else { return };
                (
                    g.token.as_str(),
                    g.claims.login.subject(&g.claims.user),
                    file_id_text(&f.resource),
                    f.view_mode.as_str(),
                )
            }
            (None, Some(p)) => (
                &*p.tail,
                p.holder.user.as_str(),
                format!("{}!{}", p.holder.storage_id, p.holder.opaque_id),
                if self.read_write {
                    "VIEW_MODE_READ_WRITE"
                } else {
                    "VIEW_MODE_READ_ONLY"
                },
            ),
            (None, None) => return,
        };
        let seen = Seen {
            token,
            user,
            file: &file,
            app,
            view_mode,
            instance: a.instance,
        };
        activity.seen(&seen);
        let change = match (a.operation, a.status, a.lock) {
            (
                WopiOperation::Lock | WopiOperation::RefreshLock | WopiOperation::UnlockAndRelock,
                200,
                Some(id),
            ) => LockChange::Held { lock_id: id },
            (WopiOperation::Unlock, 200, _) => LockChange::Released,
            _ => return,
        };
        let holder = match &self.gateway {
            Some(g) => g.claims.user.clone(),
            None => holder_of_query(a.query).unwrap_or_default(),
        };
        activity.lock_changed(&seen, &holder, change);
    }
}

/// The REVA user inside the wopiserver token of a request's query.
fn holder_of_query(query: Option<&str>) -> Option<UserClaim> {
    let token = crate::tokens::carriers::access_token(query).ok()??;
    let wopi = crate::tokens::wopiserver::read(&token)?;
    Some(crate::tokens::reva::unverified_claims(&wopi.userid)?.user)
}
