//! What the simulated DVA does on purpose when koppeltest judges a PGO (the PGO suite,
//! `crate::bench`): each scenario of that suite is one practice whose DVA behaves in one of
//! these ways. A stimulus is not a deviation of the DVA (those are [`super::Quirk`]s, judged by
//! the DVA suite); it is a situation every conformant PGO must handle, from a conformant DVA or
//! a hostile one.
//!
//! The DVA also records every request it receives while a stimulus is set (see
//! [`super::record`]): the PGO suite's checks judge those records, and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One behaviour of the simulated DVA towards a PGO under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stimulus {
    /// Conformant in every respect: what the request checks are judged on.
    Conformant,
    /// Conformant, with searches answered in pages of two linked by `next`.
    Paging,
    /// Pages of two, whose `next` links name another host (a listener the PGO suite watches).
    NextLinkOffHost,
    /// The authorization response carries a code and a `state` the PGO never sent.
    WrongState,
    /// The authorization ends in a redirect with `error=access_denied` (consent refused).
    AccessDenied,
    /// The authorization ends in a redirect with `error=invalid_scope`.
    InvalidScope,
    /// The landing page's login sends the browser to a plain `http:` URL.
    HttpRedirect,
    /// Every access token is revoked after one resource request (as a DVA may revoke a token
    /// before its `expires_in`): the next request with it is answered 401 `invalid_token`, so
    /// a PGO meets the 401 however early it refreshes by itself. Refresh tokens rotate.
    ExpiringTokens,
    /// As [`Self::ExpiringTokens`], and every refresh is answered `invalid_grant`.
    RefreshRefused,
    /// The back channel presents a certificate from a CA the PGO does not trust.
    UntrustedCertificate,
    /// The back channel presents a valid certificate for another host.
    WrongHostCertificate,
    /// The token and resource endpoints are on a host the Whitelist does not list (the lists
    /// say so; the DVA itself is conformant).
    OffWhitelist,
    /// The first resource request is answered 503 with `Retry-After: 1`.
    ServerErrorOnce,
    /// The first resource request is answered late, inside the 60 s budget.
    SlowAnswerOnce,
    /// The token response carries members MedMij does not define.
    ExtraField,
}

impl Stimulus {
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Access tokens die after one resource request.
    pub fn single_use_tokens(self) -> bool {
        matches!(self, Stimulus::ExpiringTokens | Stimulus::RefreshRefused)
    }
}

/// A stimulus with the state it needs while the DVA runs.
#[derive(Debug)]
pub struct Staged {
    pub stimulus: Stimulus,
    /// How late [`Stimulus::SlowAnswerOnce`] answers.
    pub slow_answer: Duration,
    /// Where [`Stimulus::HttpRedirect`] sends the browser (`http://host:port`), or where
    /// [`Stimulus::NextLinkOffHost`]'s next links point (`https://host:port`): a listener the
    /// PGO suite watches, which records every connection.
    pub http_trap: Option<String>,
    /// Whether the one-off answer (503 or slow) was given.
    once_given: AtomicBool,
}

impl Staged {
    pub fn new(stimulus: Stimulus, slow_answer: Duration, http_trap: Option<String>) -> Staged {
        Staged {
            stimulus,
            slow_answer,
            http_trap,
            once_given: AtomicBool::new(false),
        }
    }

    /// True the first time only: the one resource request the one-off stimuli spoil.
    pub fn first_time(&self) -> bool {
        !self.once_given.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        assert_eq!(Stimulus::ServerErrorOnce.name(), "server-error-once");
        assert_eq!(Stimulus::WrongState.name(), "wrong-state");
    }

    #[test]
    fn the_one_off_answer_is_given_once() {
        let s = Staged::new(Stimulus::ServerErrorOnce, Duration::ZERO, None);
        assert!(s.first_time());
        assert!(!s.first_time());
    }
}
