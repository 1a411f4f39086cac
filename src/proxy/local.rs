//! Answers the public listener serves itself, without the wopiserver's WOPI path: the open
//! APIs, the app list and the Office mobile endpoints. Each reads what it needs from the
//! session and hands over to the module that owns the flow.

use bytes::BytesMut;
use pingora::proxy::Session;

use super::Gateway;
use super::ctx::RequestCtx;
use super::respond;
use crate::auth::AuthError;
use crate::error::{ApiError, ErrorCode, Reply};
use crate::mobile::MobileRequest;
use crate::open::request::{self, OpenApi};
use crate::tokens::carriers::{self, BearerForm};
use crate::wopi::route::Route;

impl Gateway {
    /// Everything but WOPI file traffic, answered here; the answer's JSON body.
    pub(super) async fn answer_locally(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Vec<u8>, ApiError> {
        let api = match ctx.route {
            Route::LegacyOpen => OpenApi::Legacy,
            Route::AppOpen => OpenApi::AppOpen,
            Route::AppList => {
                return Ok(crate::open::app_list::app_list(&self.open.backends.discovery).await);
            }
            Route::MethodNotAllowed => {
                return Err(ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    "method not allowed",
                ));
            }
            Route::BadPath(reason) => return Err(ApiError::new(ErrorCode::BadRequest, reason)),
            _ => return Err(ApiError::no_such_endpoint()),
        };
        let (outcome, waited) =
            crate::metrics::timing_upstreams(self.open_api(api, session, ctx)).await;
        ctx.upstream_took = Some(waited);
        outcome
    }

    /// `GET /api/v0/wopi/open` and `POST /app/open`: the answer's JSON body.
    async fn open_api(
        &self,
        api: OpenApi,
        session: &mut Session,
        ctx: &RequestCtx,
    ) -> Result<Vec<u8>, ApiError> {
        let req = session.req_header();
        let bearer = carriers::single_bearer(
            req.headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
            BearerForm::Standard,
        )
        .map_err(AuthError::from)?
        .to_owned();
        let query = req.uri.query().map(str::to_owned);
        let form = if api.reads_form() {
            self.read_form(session).await?
        } else {
            Vec::new()
        };
        let params = api.params(query.as_deref(), &form)?;
        let result = self
            .open
            .open(&params.request(&bearer, &ctx.request_id))
            .await;
        request::count(api, result.as_ref());
        let result = result?;
        tracing::info!(request_id = %ctx.request_id, app = %result.app_name, view_mode = result.view_mode.as_str(), "opened");
        Ok(api.answer(&result))
    }

    /// `POST /oidc/backchannel-logout`: the form's logout token, verified and acted on.
    pub(super) async fn backchannel_logout(&self, session: &mut Session) -> Reply {
        let Some(logout) = &self.logout else {
            return ApiError::no_such_endpoint().into();
        };
        match self.read_form(session).await {
            Ok(form) => logout.serve(&form).await,
            Err(e) => e.into(),
        }
    }

    /// The request body of a form post (bounded); empty for any other content type.
    async fn read_form(&self, session: &mut Session) -> Result<Vec<u8>, ApiError> {
        let is_form = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut body = BytesMut::new();
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|_| ApiError::new(ErrorCode::BadRequest, "could not read the request body"))?
        {
            if body.len() + chunk.len() > self.max_api_body_bytes {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body too large",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(if is_form { body.to_vec() } else { Vec::new() })
    }

    /// The Office mobile endpoints, answered from REVA.
    pub(super) async fn mobile(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
    ) -> pingora::Result<()> {
        let Some(service) = &self.mobile_service else {
            let e = ApiError::no_such_endpoint();
            return respond::error(session, &e, &ctx.request_id).await;
        };
        let req = session.req_header();
        let answer = match carriers::access_token(req.uri.query()) {
            Ok(access_token) => {
                let mreq = MobileRequest {
                    head: req,
                    access_token: access_token.map(|t| t.into_owned()),
                };
                service.serve(ctx.route, &mreq).await
            }
            Err(_) => Err(ApiError::new(
                ErrorCode::BadRequest,
                "more than one access_token",
            )),
        };
        let reply = answer.unwrap_or_else(Reply::from);
        respond::reply(session, reply, &ctx.request_id).await
    }
}
