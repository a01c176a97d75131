//! The simulated DVA's named deviations from MedMij ("quirks"), all in one place.
//!
//! Misbehaviour is data: a matrix row lists quirk names, the DVA's handlers consult
//! [`Quirks::has`] at the one point each rule is enforced, and nothing else in the DVA knows
//! about them. Every quirk names the defect from the domain brief (§10) it reproduces, and the
//! project's tests prove that at least one check fails against it.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Quirk {
    /// The token endpoint exchanges an authorization code more than once (brief §10.3;
    /// core.tknint.203/204).
    CodeReplayAccepted,
    /// The authorization response with the code leaves out `state` (brief §10.7; RFC 6749
    /// §4.1.2). Error redirects still carry it.
    StateNotEchoed,
    /// The back channel does not require a client certificate (brief §10.16; RFC 8705 §2).
    ClientCertNotRequired,
    /// Errors carry HTTP-like numbers (`error=401`) instead of RFC 6749 codes (brief §10.12).
    NumericErrorCodes,
    /// FHIR resources come without `meta.profile` (Nictiz qualification; brief §9).
    MetaProfileMissing,
    /// The assertion consumer accepts SAML messages without checking their signatures
    /// (brief §10.18; eID SAML 4.4 §9).
    SamlSignatureUnchecked,
    /// The assertion consumer accepts an Assertion whose Audience is another DV (brief §10.18).
    SamlAudienceUnchecked,
    /// A level of assurance below substantieel is accepted (brief §8, §10.18).
    LoaUnchecked,
}

impl Quirk {
    pub const ALL: &'static [Quirk] = &[
        Quirk::CodeReplayAccepted,
        Quirk::StateNotEchoed,
        Quirk::ClientCertNotRequired,
        Quirk::NumericErrorCodes,
        Quirk::MetaProfileMissing,
        Quirk::SamlSignatureUnchecked,
        Quirk::SamlAudienceUnchecked,
        Quirk::LoaUnchecked,
    ];

    /// The kebab-case name used in matrix files.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn description(self) -> &'static str {
        match self {
            Quirk::CodeReplayAccepted => "authorization codes can be exchanged more than once",
            Quirk::StateNotEchoed => "the redirect with the code leaves out state",
            Quirk::ClientCertNotRequired => {
                "token and resource endpoints accept clients without a certificate"
            }
            Quirk::NumericErrorCodes => "OAuth errors are numbers instead of RFC 6749 codes",
            Quirk::MetaProfileMissing => "FHIR resources lack meta.profile",
            Quirk::SamlSignatureUnchecked => "SAML signatures are not verified",
            Quirk::SamlAudienceUnchecked => "the Assertion's Audience is not checked",
            Quirk::LoaUnchecked => "a level of assurance below substantieel is accepted",
        }
    }
}

/// The set of quirks one simulated DVA has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Quirks(pub BTreeSet<Quirk>);

impl Quirks {
    pub fn none() -> Quirks {
        Quirks::default()
    }

    pub fn of(quirks: &[Quirk]) -> Quirks {
        Quirks(quirks.iter().copied().collect())
    }

    pub fn has(&self, q: Quirk) -> bool {
        self.0.contains(&q)
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|q| q.name()).collect()
    }
}

/// The RFC 6749 error code, or its numeric imitation when the quirk is on.
pub fn error_code(quirks: &Quirks, code: &'static str) -> String {
    if !quirks.has(Quirk::NumericErrorCodes) {
        return code.to_string();
    }
    match code {
        "invalid_client" | "access_denied" => "401",
        "server_error" => "500",
        _ => "400",
    }
    .to_string()
}
