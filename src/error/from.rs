//! Every module error a client can see, mapped to its [`ErrorCode`] here and nowhere else
//! (style.md principle 6). One rule for existence (wopi.md §1.6): a resource the caller may not
//! see is answered exactly like one that does not exist.

use super::{ApiError, ErrorCode};
use crate::auth::AuthError;
use crate::discovery::DiscoveryError;
use crate::exchange::ExchangeError;
use crate::ids::FileIdError;
use crate::reva::RevaError;
use crate::wopiserver::WopiserverError;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::SeveralTokens => ErrorCode::BadRequest,
            AuthError::KeysUnavailable => ErrorCode::Unavailable,
            _ => ErrorCode::InvalidToken,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<RevaError> for ApiError {
    fn from(e: RevaError) -> Self {
        let code = match e {
            RevaError::Unavailable => ErrorCode::Unavailable,
            RevaError::Timeout => ErrorCode::UpstreamTimeout,
            RevaError::Unauthenticated => ErrorCode::InvalidToken,
            // Denied and absent must read the same, or the answer tells that the file exists.
            RevaError::PermissionDenied | RevaError::NotFound => {
                return ApiError::not_found();
            }
            RevaError::Upstream(_) => ErrorCode::UpstreamError,
            RevaError::AlreadyExists | RevaError::Locked => ErrorCode::Conflict,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> Self {
        let code = match &e {
            ExchangeError::MissingClaim(_) => ErrorCode::InvalidToken,
            ExchangeError::MintFailed => ErrorCode::Internal,
            // The token cannot be renewed here: the client must open the file again.
            ExchangeError::NoCredential => ErrorCode::InvalidToken,
            ExchangeError::Reva(RevaError::Unauthenticated | RevaError::PermissionDenied) => {
                return ApiError::new(ErrorCode::InvalidToken, "REVA did not accept the identity");
            }
            ExchangeError::Reva(r) => return r.clone().into(),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<WopiserverError> for ApiError {
    fn from(e: WopiserverError) -> Self {
        let code = match e {
            WopiserverError::Unavailable => ErrorCode::Unavailable,
            WopiserverError::Busy => return ApiError::busy(),
            WopiserverError::Timeout => ErrorCode::UpstreamTimeout,
            WopiserverError::NotFound => return ApiError::not_found(),
            WopiserverError::Rejected(_)
            | WopiserverError::Invalid(_)
            | WopiserverError::BrokenOff => ErrorCode::UpstreamError,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<DiscoveryError> for ApiError {
    fn from(e: DiscoveryError) -> Self {
        let code = match e {
            DiscoveryError::Unavailable { .. } => ErrorCode::Unavailable,
            DiscoveryError::NoSuchApp(_) => ErrorCode::NotFound,
            DiscoveryError::Unsupported(_) => ErrorCode::UnsupportedExtension,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<FileIdError> for ApiError {
    fn from(e: FileIdError) -> Self {
        ApiError::new(ErrorCode::BadRequest, e.to_string())
    }
}

impl ApiError {
    /// The answer for a resource that is absent or that the caller may not see.
    pub fn not_found() -> Self {
        ApiError::new(ErrorCode::NotFound, "not found")
    }

    /// The error as a WOPI client holding a token for one file sees it: anything that says the
    /// file exists but is not theirs to open (no permission, not a file, no app for it) is 404.
    pub fn hiding_existence(self) -> Self {
        match self.code {
            ErrorCode::Forbidden | ErrorCode::BadRequest | ErrorCode::UnsupportedExtension => {
                ApiError::new(ErrorCode::NotFound, "file not found")
            }
            _ => self,
        }
    }
}

/// A module error is a [`Reply`] the way it is an [`ApiError`]: `?` works in flows that answer
/// with WOPI headers beside an error.
macro_rules! reply_from {
    ($($e:ty),*) => {$(
        impl From<$e> for super::Reply {
            fn from(e: $e) -> Self {
                ApiError::from(e).into()
            }
        }
    )*};
}

reply_from!(
    AuthError,
    RevaError,
    ExchangeError,
    WopiserverError,
    DiscoveryError,
    FileIdError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_and_absent_read_the_same() {
        let denied = ApiError::from(RevaError::PermissionDenied);
        let absent = ApiError::from(RevaError::NotFound);
        assert_eq!(denied, absent);
        assert_eq!(denied.status(), http::StatusCode::NOT_FOUND);
        assert_eq!(ApiError::from(WopiserverError::NotFound), absent);
        assert_eq!(
            ApiError::from(ExchangeError::Reva(RevaError::NotFound)),
            absent
        );
    }

    #[test]
    fn each_condition_keeps_its_own_code() {
        let code = |e: ApiError| e.code;
        assert_eq!(code(AuthError::SeveralTokens.into()), ErrorCode::BadRequest);
        assert_eq!(code(AuthError::Expired.into()), ErrorCode::InvalidToken);
        assert_eq!(
            code(AuthError::KeysUnavailable.into()),
            ErrorCode::Unavailable
        );
        assert_eq!(code(RevaError::Timeout.into()), ErrorCode::UpstreamTimeout);
        assert_eq!(code(ExchangeError::MintFailed.into()), ErrorCode::Internal);
        assert_eq!(
            code(ExchangeError::NoCredential.into()),
            ErrorCode::InvalidToken
        );
        assert_eq!(
            code(ExchangeError::Reva(RevaError::PermissionDenied).into()),
            ErrorCode::InvalidToken
        );
        assert_eq!(
            code(DiscoveryError::Unsupported(".xyz".into()).into()),
            ErrorCode::UnsupportedExtension
        );
        assert_eq!(
            code(DiscoveryError::NoSuchApp("x".into()).into()),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(WopiserverError::Rejected(500).into()),
            ErrorCode::UpstreamError
        );
        assert_eq!(code(FileIdError::Invalid.into()), ErrorCode::BadRequest);
    }

    #[test]
    fn a_wopi_client_never_learns_that_a_file_exists() {
        for hidden in [
            ErrorCode::Forbidden,
            ErrorCode::BadRequest,
            ErrorCode::UnsupportedExtension,
        ] {
            let e = ApiError::new(hidden, "detail").hiding_existence();
            assert_eq!(e, ApiError::new(ErrorCode::NotFound, "file not found"));
        }
        let e = ApiError::new(ErrorCode::Unavailable, "REVA is down").hiding_existence();
        assert_eq!(e.code, ErrorCode::Unavailable);
    }
}
