//! What a client sees when proxying fails: pingora's transport errors mapped to the gateway's
//! JSON errors, in one place for both listeners. (Module errors are mapped in
//! [`crate::error`]; pingora's stay here, at the edge.)

use pingora::ErrorType;
use pingora::proxy::{FailToProxy, Session};

use super::respond;
use crate::error::{ApiError, ErrorCode};

/// The error answer for a failed proxy attempt; `None` when the client is gone.
pub fn fail_status(e: &pingora::Error) -> Option<ApiError> {
    match e.etype() {
        t if *t == super::balance::BUSY => Some(ApiError::busy()),
        ErrorType::ConnectTimedout
        | ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError => Some(ApiError::new(
            ErrorCode::Unavailable,
            "wopiserver unavailable",
        )),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &pingora::ErrorSource::Upstream =>
        {
            Some(ApiError::new(
                ErrorCode::UpstreamTimeout,
                "wopiserver did not answer in time",
            ))
        }
        ErrorType::HTTPStatus(code) => Some(ApiError::new(
            if *code == 413 {
                ErrorCode::PayloadTooLarge
            } else {
                ErrorCode::BadRequest
            },
            "invalid request",
        )),
        _ => match e.esource() {
            pingora::ErrorSource::Upstream => {
                Some(ApiError::new(ErrorCode::UpstreamError, "wopiserver error"))
            }
            pingora::ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => None,
                ErrorType::ReadTimedout => Some(ApiError::new(
                    ErrorCode::RequestTimeout,
                    "request body not received in time",
                )),
                _ => Some(ApiError::new(ErrorCode::BadRequest, "invalid request")),
            },
            _ => Some(ApiError::new(ErrorCode::Internal, "internal error")),
        },
    }
}

/// Both listeners' `fail_to_proxy`: count the upstream failure and answer with its JSON error
/// while nothing has been written yet.
pub async fn answer_failure(
    session: &mut Session,
    e: &pingora::Error,
    request_id: &str,
) -> FailToProxy {
    if let Some(kind) = upstream_error_kind(e) {
        crate::metrics::metrics().upstream_error("wopiserver", kind);
    }
    let mut written = 0;
    if let Some(api) = fail_status(e)
        && session.response_written().is_none()
        && respond::error(session, &api, request_id).await.is_ok()
    {
        written = api.status().as_u16();
    }
    FailToProxy {
        error_code: written,
        can_reuse_downstream: false,
    }
}

/// A bounded name for why a proxied call to the wopiserver failed; `None` when it did not.
pub fn upstream_error_kind(e: &pingora::Error) -> Option<&'static str> {
    match e.etype() {
        t if *t == super::balance::BUSY => Some("busy"),
        ErrorType::ConnectTimedout => Some("connect_timeout"),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Some("unavailable")
        }
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => Some("tls"),
        _ if e.esource() == &pingora::ErrorSource::Upstream => Some(match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
            _ => "invalid",
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: &pingora::Error) -> Option<ErrorCode> {
        fail_status(e).map(|a| a.code)
    }

    #[test]
    fn transport_failures_map_to_the_client_facing_codes() {
        let up = |t: ErrorType| *pingora::Error::new(t).into_up();
        let down = |t: ErrorType| *pingora::Error::new(t).into_down();
        assert_eq!(
            code(&up(ErrorType::ConnectRefused)),
            Some(ErrorCode::Unavailable)
        );
        assert_eq!(
            code(&up(ErrorType::ReadTimedout)),
            Some(ErrorCode::UpstreamTimeout)
        );
        assert_eq!(
            code(&up(ErrorType::InvalidHTTPHeader)),
            Some(ErrorCode::UpstreamError)
        );
        assert_eq!(
            code(&down(ErrorType::ReadTimedout)),
            Some(ErrorCode::RequestTimeout)
        );
        // The client is gone: nothing to answer.
        assert_eq!(code(&down(ErrorType::ConnectionClosed)), None);
        assert_eq!(
            code(&down(ErrorType::HTTPStatus(413))),
            Some(ErrorCode::PayloadTooLarge)
        );
        assert_eq!(
            code(&down(ErrorType::InvalidHTTPHeader)),
            Some(ErrorCode::BadRequest)
        );
    }

    #[test]
    fn upstream_failures_have_bounded_kinds() {
        let up = |t: ErrorType| *pingora::Error::new(t).into_up();
        assert_eq!(
            upstream_error_kind(&up(ErrorType::ConnectTimedout)),
            Some("connect_timeout")
        );
        assert_eq!(
            upstream_error_kind(&up(ErrorType::ConnectRefused)),
            Some("unavailable")
        );
        assert_eq!(
            upstream_error_kind(&up(ErrorType::WriteTimedout)),
            Some("timeout")
        );
        assert_eq!(
            upstream_error_kind(&up(ErrorType::InvalidHTTPHeader)),
            Some("invalid")
        );
        let down = *pingora::Error::new(ErrorType::ReadError).into_down();
        assert_eq!(upstream_error_kind(&down), None);
    }
}
