//! Deliberate faults of the mock PGO when it plays a PGO under test (`koppeltest mock-pgo
//! --fault NAME`). Each is really implemented in [`super::Pgo`] or [`super::collect`]: the PGO
//! suite must catch it from the requests alone, and the mutation test
//! (`tests/it/pgo_suite.rs`) proves each fails exactly the PGO scenarios listed in
//! `requirements/pgo-faults.toml`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PgoFault {
    /// Exchanges the code whatever state came back.
    StateNotChecked,
    /// Refreshes with the first refresh token it got, never the rotated one.
    OldRefreshTokenReused,
    /// Asks for FHIR R4 (`fhirVersion=4.0`).
    AcceptHeaderR4,
    /// Connects to hosts the Whitelist does not list.
    WhitelistIgnored,
    /// Puts the token request's parameters in the query string.
    TokenInQuery,
    /// Reads the first page of a search only.
    PagingNotFollowed,
    /// Follows a next link to any https host, not only the resource host.
    NextLinkHostUnchecked,
    /// Uses a counter as `state`.
    PredictableState,
    /// Sends its organisation's name as `client_id`.
    ClientIdNotHostname,
    /// Sends a redirect URI on another path than the registered one.
    RedirectUriUnregistered,
    /// Sends the 1.0 scope dialect (`49`) whatever its release (the 2.2 dialect on a 1.0 PGO).
    ScopeWrongDialect,
    /// Sends one MedMij-Request-ID with every request.
    RequestIdReused,
    /// Presents no client certificate at the token endpoint.
    NoClientCertificate,
    /// Sends the redirect URI url-encoded twice at the token endpoint.
    RedirectUriDoubleEncoded,
    /// Sends the access token as an `access_token` query parameter.
    BearerInQuery,
    /// Never asks the encounters query.
    QuerySkipped,
    /// Sends the lab-results date parameter when its profile says not to, and the other way
    /// round.
    LabDateInverted,
    /// Starts the authorization once more after an error redirect.
    AuthorizeRetried,
    /// Gives up on a 401 instead of refreshing.
    NoRefresh,
    /// Goes on with the resource requests after invalid_grant.
    InvalidGrantIgnored,
    /// Accepts any server certificate on the back channel.
    CertificateUnchecked,
    /// Lets its browser follow a redirect to plain http:.
    HttpFollowed,
    /// Gives up on a query answered 5xx.
    NoRetryOnServerError,
    /// Waits for a resource answer only half as long as the slow answer takes, then asks again.
    Impatient,
    /// Refuses a token response with members it does not know.
    StrictTokenParser,
}

impl PgoFault {
    pub const ALL: &[PgoFault] = &[
        PgoFault::StateNotChecked,
        PgoFault::OldRefreshTokenReused,
        PgoFault::AcceptHeaderR4,
        PgoFault::WhitelistIgnored,
        PgoFault::TokenInQuery,
        PgoFault::PagingNotFollowed,
        PgoFault::NextLinkHostUnchecked,
        PgoFault::PredictableState,
        PgoFault::ClientIdNotHostname,
        PgoFault::RedirectUriUnregistered,
        PgoFault::ScopeWrongDialect,
        PgoFault::RequestIdReused,
        PgoFault::NoClientCertificate,
        PgoFault::RedirectUriDoubleEncoded,
        PgoFault::BearerInQuery,
        PgoFault::QuerySkipped,
        PgoFault::LabDateInverted,
        PgoFault::AuthorizeRetried,
        PgoFault::NoRefresh,
        PgoFault::InvalidGrantIgnored,
        PgoFault::CertificateUnchecked,
        PgoFault::HttpFollowed,
        PgoFault::NoRetryOnServerError,
        PgoFault::Impatient,
        PgoFault::StrictTokenParser,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn parse(name: &str) -> Option<PgoFault> {
        PgoFault::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The catalogue's PGO rules this fault breaks (what the mutation test holds it to).
    pub fn violates(self) -> &'static [&'static str] {
        match self {
            PgoFault::StateNotChecked => &["pgo:callback.state"],
            PgoFault::OldRefreshTokenReused => &["pgo:token.rotation"],
            PgoFault::AcceptHeaderR4 => &["pgo:resource.accept"],
            PgoFault::WhitelistIgnored => &["pgo:trust.whitelist"],
            PgoFault::TokenInQuery => &["pgo:token.form"],
            PgoFault::PagingNotFollowed => &["pgo:resource.paging"],
            PgoFault::NextLinkHostUnchecked => &["pgo:resource.paging-host"],
            PgoFault::PredictableState => &["pgo:authorize.state"],
            PgoFault::ClientIdNotHostname => &["pgo:authorize.client-id"],
            PgoFault::RedirectUriUnregistered => &["pgo:authorize.redirect-uri"],
            PgoFault::ScopeWrongDialect => &["pgo:authorize.scope"],
            PgoFault::RequestIdReused => &[
                "pgo:authorize.headers",
                "medmij:token.headers",
                "medmij:resource.headers",
            ],
            PgoFault::NoClientCertificate => &["pgo:token.mtls"],
            PgoFault::RedirectUriDoubleEncoded => &["pgo:token.redirect-uri"],
            PgoFault::BearerInQuery => &["pgo:resource.bearer"],
            PgoFault::QuerySkipped => &["pgo:resource.queries"],
            PgoFault::LabDateInverted => &["pgo:resource.lab-date"],
            PgoFault::AuthorizeRetried => &["pgo:callback.error"],
            PgoFault::NoRefresh => &["pgo:token.refresh"],
            PgoFault::InvalidGrantIgnored => &["pgo:token.invalid-grant"],
            PgoFault::CertificateUnchecked => &["pgo:trust.certificate"],
            PgoFault::HttpFollowed => &["pgo:trust.https-only"],
            PgoFault::NoRetryOnServerError => &["pgo:robust.server-error"],
            PgoFault::Impatient => &["pgo:robust.slow-answer"],
            PgoFault::StrictTokenParser => &["pgo:robust.unknown-field"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_has_a_name_that_parses_back_and_breaks_a_rule() {
        for f in PgoFault::ALL {
            assert_eq!(PgoFault::parse(&f.name()), Some(*f));
            assert!(!f.violates().is_empty(), "{f:?}");
        }
        assert_eq!(PgoFault::StateNotChecked.name(), "state-not-checked");
    }
}
