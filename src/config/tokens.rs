//! `[tokens]`: gateway tokens (key, rotation, wrapping, lifetime) and how long an open
//! session's access and remembered token are trusted without REVA.

use std::time::Duration;

use super::file::{self, ExchangeMode};
use super::types::Tokens;
use super::validate::Validator;

impl Validator<'_> {
    pub(super) fn tokens(
        &mut self,
        t: file::TokensSection,
        mode: ExchangeMode,
        mobile: bool,
    ) -> Tokens {
        let wrap = match (t.wrap_tokens, mode) {
            (Some(true), ExchangeMode::Authenticate) => {
                self.problem(
                    "tokens.wrap_tokens",
                    "needs exchange.mode = \"mint\": the gateway renews wopiserver tokens with REVA tokens it mints",
                );
                false
            }
            (Some(w), _) => w,
            (None, m) => m == ExchangeMode::Mint,
        };
        let key = t
            .key_file
            .as_ref()
            .and_then(|p| self.secret("tokens.key_file", p));
        let previous_key = t
            .previous_key_file
            .as_ref()
            .and_then(|p| self.secret("tokens.previous_key_file", p));
        if (wrap || mobile) && key.is_none() && t.key_file.is_none() {
            self.problem(
                "tokens.key_file",
                "required: gateway tokens are on (wrap_tokens defaults to true in mint mode; [mobile] needs them)",
            );
        }
        if key.as_ref().is_some_and(|k| k.expose().len() < 32) {
            self.problem(
                "tokens.key_file",
                "use at least 32 characters of random text",
            );
        }
        let ttl = t.ttl_seconds.unwrap_or(36_000);
        if ttl < 300 {
            self.problem("tokens.ttl_seconds", "must be at least 300");
        }
        let recheck = t.recheck_seconds.unwrap_or(300);
        if recheck == 0 {
            self.problem("tokens.recheck_seconds", "must be at least 1");
        }
        let idle = t.idle_seconds.unwrap_or(1800);
        if idle < 60 {
            self.problem("tokens.idle_seconds", "must be at least 60");
        }
        Tokens {
            key,
            previous_key,
            wrap,
            ttl: Duration::from_secs(ttl),
            recheck: Duration::from_secs(recheck.max(1)),
            idle: Duration::from_secs(idle),
        }
    }
}
