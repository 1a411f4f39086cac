//! After a proxied WOPI call is answered: its session and lock change told to the operator's
//! control point (`wopi_call`'s [`Answered`]).

use pingora::proxy::Session;

use super::Gateway;
use super::ctx::RequestCtx;
use crate::wopi_call::Answered;

impl Gateway {
    pub(super) fn record_activity(&self, session: &Session, ctx: &RequestCtx) {
        let (Some(admitted), Some(operation)) = (&ctx.wopi, ctx.route.operation()) else {
            return;
        };
        let req = session.req_header();
        let instances = self.pool.instances.list();
        let instance = ctx
            .attempt
            .instance
            .and_then(|i| instances.get(i))
            .map_or("", |x| x.name.as_str());
        admitted.record(
            &self.open.backends.control.activity,
            &Answered {
                operation,
                status: session.response_written().map_or(0, |r| r.status.as_u16()),
                lock: req.headers.get("x-wopi-lock").and_then(|v| v.to_str().ok()),
                query: req.uri.query(),
                instance,
            },
        );
    }
}
