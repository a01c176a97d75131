//! Scenario files: declarative TOML under `scenarios/`, a typed contract.
//!
//! Loading runs in passes, as nextest does for its config: syntax and types (serde with
//! `deny_unknown_fields`, so a misspelt field is an error naming it), then semantics (every step
//! a check names exists and has the right action, ids are unique, queries are known). Every
//! error names the file, the line and the field. The JSON Schema in `schemas/scenario.schema.json`
//! is generated from these types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::saml::Loa;
use crate::tvs::TvsFault;

/// One scenario: steps the mock PGO performs, then checks over what happened.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable id, e.g. `auth.code-replay`; used in reports and known-deviation declarations.
    pub id: String,
    pub title: String,
    /// What the scenario shows and why it matters; say here which [U] default it assumes.
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Requirement ids this scenario verifies, added to those of each of its checks
    /// (e.g. `core.tknint.204`).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// How the mock TVS logs the person in during `authorize` steps.
    #[serde(default)]
    pub tvs: TvsLogin,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    #[serde(rename = "check")]
    pub checks: Vec<CheckSpec>,
    /// The file this scenario was parsed from, as it was, so a run folder can keep its inputs
    /// (`evidence::write_inputs`). Not part of the format.
    #[serde(skip)]
    pub source: Source,
}

/// A scenario file's path and text as parsed.
#[derive(Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: std::sync::Arc<str>,
}

impl std::fmt::Debug for Source {
    // The text is the scenario again; the path says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The test person's login at the mock TVS.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TvsLogin {
    /// A deliberate fault in what the TVS sends the DVA.
    pub fault: Option<TvsFault>,
    /// Level of assurance achieved (default: the TVS's configured level, substantial).
    pub loa: Option<Loa>,
    /// Press "cancel" instead of logging in.
    #[serde(default)]
    pub cancel: bool,
    /// Log in as another test person (e.g. one the DVA holds no record for).
    pub bsn: Option<String>,
    /// Do not log in at the TVS: deliver the artifact of the previous authorize step to the
    /// DVA's assertion consumer again, in this new authorization (a replayed `SAMLart`).
    #[serde(default)]
    pub replay_artifact: bool,
}

/// One thing the mock PGO does.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// The whole front channel: authorization request, DVA landing page, TVS login, consent,
    /// until the browser is redirected back to the PGO or stops on a page.
    Authorize(AuthorizeStep),
    /// Exchange an authorization code at the token endpoint (back channel).
    Token(TokenStep),
    /// Use a refresh token at the token endpoint.
    Refresh(RefreshStep),
    /// One of the seven gegevensdienst-49 queries at the resource endpoint.
    Fhir(FhirStep),
    /// Wait until a code or an access token has expired.
    Wait(WaitStep),
    /// Probe one endpoint's TLS at the wire (hand-built ClientHellos, judged on the ServerHello
    /// or the alert, as testssl.sh does) and record the certificate chain it presents.
    TlsScan(TlsScanStep),
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsScanStep {
    pub id: String,
    /// Which of the row's endpoints to probe.
    pub endpoint: Endpoint,
}

/// One of a DVA's three endpoints, as the ZAL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// Front channel: public OV certificate, no client certificate.
    Authorization,
    /// Back channel: private-G1 certificate, mutual TLS.
    Token,
    /// Back channel: private-G1 certificate, mutual TLS.
    Resource,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Authorization => "authorization",
            Endpoint::Token => "token",
            Endpoint::Resource => "resource",
        }
    }

    /// Whether the endpoint is on the back channel.
    pub fn is_back_channel(self) -> bool {
        !matches!(self, Endpoint::Authorization)
    }
}

/// A client certificate that a back-channel endpoint must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BadClientCertificate {
    /// No certificate at all.
    None,
    /// The PGO's host name, issued by a CA in no trust store.
    UnknownCa,
    /// The PGO's host name, from the right CA, expired.
    Expired,
    /// The PGO's host name, from the right CA, valid only from tomorrow.
    NotYetValid,
    /// A valid chain from the right CA for another host name than client_id.
    OtherHost,
    /// The PGO's host name, from the right CA, without clientAuth in its EKU.
    NoClientAuth,
}

impl BadClientCertificate {
    pub fn label(self) -> &'static str {
        match self {
            BadClientCertificate::None => "no client certificate",
            BadClientCertificate::UnknownCa => "a certificate from an unknown CA",
            BadClientCertificate::Expired => "an expired certificate",
            BadClientCertificate::NotYetValid => "a certificate not yet valid",
            BadClientCertificate::OtherHost => "a certificate for another host than client_id",
            BadClientCertificate::NoClientAuth => "a certificate without clientAuth",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub id: String,
    /// What to outwait: the row's code lifetime, or the `expires_in` the DVA announced.
    pub past: Expiry,
    /// For `past = "access-token"`: the token or refresh step whose expires_in counts.
    pub token_from: Option<String>,
    /// Seconds to add, so the expiry has surely passed.
    #[serde(default = "one")]
    pub margin_s: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Expiry {
    Code,
    AccessToken,
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Authorize(s) => &s.id,
            Step::Token(s) => &s.id,
            Step::Refresh(s) => &s.id,
            Step::Fhir(s) => &s.id,
            Step::Wait(s) => &s.id,
            Step::TlsScan(s) => &s.id,
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            Step::Authorize(_) => "authorize",
            Step::Token(_) => "token",
            Step::Refresh(_) => "refresh",
            Step::Fhir(_) => "fhir",
            Step::Wait(_) => "wait",
            Step::TlsScan(_) => "tls-scan",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeStep {
    pub id: String,
    /// Parameters to override in the authorization request (e.g. `scope = "nonsense"`). Values
    /// may use `{practice}` (the provider name without `@medmij`), `{client_id}`,
    /// `{redirect_uri}` and `{redirect_uri_encoded}`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Parameters to leave out (e.g. `["state"]`).
    #[serde(default)]
    pub omit: Vec<String>,
    /// What the person answers on the consent screen.
    #[serde(default)]
    pub consent: ConsentChoice,
    /// How the mock TVS logs the person in during this step, instead of the scenario's
    /// `[tvs]`: a negative step carries the fault, its control step logs in cleanly.
    pub tvs: Option<TvsLogin>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentChoice {
    #[default]
    Approve,
    Deny,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenStep {
    pub id: String,
    /// The `authorize` step whose code to exchange.
    pub code_from: String,
    /// Present the PGO's client certificate (mutual TLS). `false` connects without one.
    #[serde(default = "yes")]
    pub client_certificate: bool,
    /// Act as another PGO node: this client_id and that node's own certificate.
    pub as_client: Option<String>,
    /// Present this faulty client certificate instead of the PGO's own.
    pub bad_certificate: Option<BadClientCertificate>,
    /// Send the parameters in the query string with an empty body, as legacy libraries do.
    #[serde(default)]
    pub in_query: bool,
    /// Form parameters to override (placeholders as for `authorize`).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Form parameters to leave out.
    #[serde(default)]
    pub omit: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshStep {
    pub id: String,
    /// The `token` or `refresh` step whose refresh token to use.
    pub token_from: String,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FhirStep {
    pub id: String,
    /// A gegevensdienst-49 query: patient, episodes, medication, allergies, results, journal,
    /// encounters.
    pub query: String,
    /// The `token` or `refresh` step whose access token to use (not with `bearer = "missing"`
    /// or `"unknown"`).
    pub token_from: Option<String>,
    #[serde(default)]
    pub bearer: Bearer,
    /// Override the profile's Accept header.
    pub accept: Option<String>,
    /// Extra query parameters (e.g. `patient = "x"`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Present this faulty client certificate instead of the PGO's own.
    pub bad_certificate: Option<BadClientCertificate>,
}

/// Which bearer token a FHIR request carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Bearer {
    /// The access token of `token_from`.
    #[default]
    FromStep,
    /// No Authorization header at all.
    Missing,
    /// A token the DVA never issued.
    Unknown,
}

/// Which MedMij response-time budget a `within-budget` check applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetKind {
    /// core.tknint.206: the token endpoint answers within 10 s (matrix `budgets.token_ms`).
    Token,
    /// core.rscint.202: the resource endpoint answers within 60 s (`budgets.resource_ms`).
    Resource,
}

fn yes() -> bool {
    true
}

/// One check over the steps' results. Each kind knows the requirements it verifies.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CheckSpec {
    /// The authorize step ended in a redirect to the redirect_uri carrying a code.
    CodeIssued { step: String },
    /// The redirect back carried exactly the state the PGO sent.
    StateEchoed { step: String },
    /// The authorize step was redirected back with this RFC 6749 error (and the state), at
    /// `stage`. Passes only if `control` (the same request without the fault) got a code.
    ErrorRedirect {
        step: String,
        error: String,
        /// Where the refusal must happen.
        #[serde(default)]
        stage: Stage,
        /// The authorize step without the fault, which must have been answered with a code.
        control: String,
    },
    /// The login was refused after the DVA resolved the faulty artifact at the mock TVS, with
    /// `access_denied` to the PGO. Passes only if `control` (a clean login) got a code.
    LoginRefused {
        step: String,
        control: String,
        /// The artifact must be refused without being resolved at all (its SourceID names no
        /// TVS the DVA knows): the proof is the browser's delivery of it to the DVA, and no
        /// ArtifactResolve at the mock TVS.
        #[serde(default)]
        before_resolution: bool,
    },
    /// Two faulty logins, `step` and `other`, each refused after the DVA resolved its artifact,
    /// with the same answer to the PGO (error, error_description): a DVA that tells the two
    /// failures apart is an oracle (bad padding against corrupted content). Passes only if
    /// `control` (a clean login) got a code.
    SameRefusal {
        step: String,
        other: String,
        control: String,
    },
    /// The DVA resolved a message whose DOCTYPE names an external entity at the mock TVS's
    /// listener, and never fetched it (XXE).
    EntityNotFetched { step: String },
    /// The token endpoint issued a conformant token response.
    TokenIssued { step: String },
    /// The token endpoint refused with exactly this RFC 6749 error (HTTP 400, or 401 for
    /// `invalid_client`), or in the TLS handshake where `tls_refusal_counts`; no token. Passes
    /// only if `control` (the same request without the fault) was answered with a token.
    TokenRefused {
        step: String,
        /// The RFC 6749 error expected.
        error: String,
        #[serde(default)]
        tls_refusal_counts: bool,
        /// The token or refresh step without the fault, which must have been given a token.
        control: String,
    },
    /// A searchset Bundle of the query's resource types, each with `meta.profile`.
    FhirSearchset { step: String },
    /// The authorize step ended on an error page of the DVA's, before any login: no redirect to
    /// the redirect URI at all. Passes only if `control` (a trusted request) got a code.
    ErrorPage { step: String, control: String },
    /// The resource endpoint refused with this HTTP status, an OperationOutcome whose issue
    /// has code `issue` and, for 401 and 403, `WWW-Authenticate: Bearer error="<error>"`.
    /// Passes only if `control` (the same search with a valid request) returned a Bundle.
    ResourceRefused {
        step: String,
        status: u16,
        error: Option<String>,
        /// The OperationOutcome's `issue.code` (`security`, `forbidden`, `not-supported`).
        issue: String,
        /// The fhir step without the fault, which must have been answered with a Bundle.
        control: String,
        /// When given, the requirements this check credits instead of its kind's and the
        /// scenario's (e.g. only the SHOULD that the check's stimulus tests).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        requirements: Vec<String>,
    },
    /// The refresh step returned a new refresh token, different from the one `previous` had.
    RefreshRotated { step: String, previous: String },
    /// No link or fullUrl of the Bundle names the patient by BSN.
    NoBsnInLinks { step: String },
    /// The step's response came within the MedMij budget.
    WithinBudget { step: String, budget: BudgetKind },
    /// Set-based completeness against the fixture manifest for the logged-in patient: every
    /// expected item present, no excluded item (a leak is a privacy failure), no S/O lines.
    DatasetComplete { step: String },
    /// Every reference in the step's resources resolves within the scenario's FHIR results;
    /// references to types service 49 cannot return (Condition) are reported, not failed.
    ReferencesResolve { step: String },
    /// Every coding in the step's resources has a system and a code: those of CodeableConcepts
    /// and the bare Codings (Encounter.class, meta.security, meta.tag).
    CodingsComplete { step: String },
    /// Every resource validates against koppeltest's JSON Schema of its `meta.profile`
    /// (`schemas/fhir/`).
    ProfileValid { step: String },
    /// No BSN anywhere in the Bundle: no BSN identifier with a value (the Patient's is masked),
    /// the logged-in person's BSN in no field, and no link naming a BSN.
    NoBsnInBundle { step: String },
    /// A large result comes in pages linked by `next`: no page holds more than `max_entries`
    /// matches, the pages together hold `Bundle.total` matches, none twice, and every `next`
    /// link stays on the resource endpoint.
    Paged {
        step: String,
        /// [U] the IG names no limit; 1000 matches in one Bundle is taken as unpaged.
        #[serde(default = "default_max_page_entries")]
        max_entries: usize,
    },
    /// Protocol versions from the hello-level probes: TLS 1.2 accepted, nothing below 1.2, the
    /// highest common version chosen, downgrades refused.
    TlsVersions { step: String },
    /// TLS 1.3 accepted (MedMij: where reasonably possible; a warning otherwise).
    Tls13Supported { step: String },
    /// Every accepted suite and group, compression and renegotiation, classed under both NCSC
    /// editions; the matrix's edition decides (phase out or insufficient fails).
    TlsConfiguration { step: String },
    /// The presented chain: trusted by the row's roots for this channel, host name, no
    /// wildcard and OV policy (front), private-G1 shape and not publicly trusted (back), EKU,
    /// KU, key and signature hash, validity.
    CertificateShape { step: String },
    /// Days until the earliest expiry in the chain, warned below the matrix's threshold.
    CertificateExpiry { step: String },
    /// A back-channel request with a faulty client certificate was refused: in the handshake,
    /// after it (TLS 1.3), with invalid_client (token) or 401/403 (resource). Passes only if
    /// `control` (the same request with the PGO's own certificate) was accepted.
    ClientCertificateRefused { step: String, control: String },
    /// The step's AuthnRequest, as the browser posted it to the mock TVS, is signed: one
    /// enveloped `ds:Signature`, a direct child, RSA-SHA256 or stronger (SHA-1 fails), one
    /// Reference to the request's own ID.
    AuthnRequestSigned { step: String },
    /// The step's AuthnRequest names the assertion consumer service by
    /// `AssertionConsumerServiceIndex`, never by `AssertionConsumerServiceURL`.
    AuthnRequestAcsIndex { step: String },
    /// The step's AuthnRequest's Issuer is the DV's registered entityID.
    AuthnRequestIssuer { step: String },
    /// The step's AuthnRequest's Destination is the TVS's SSO URL.
    AuthnRequestDestination { step: String },
    /// The step's AuthnRequest has a RequestedAuthnContext with Comparison `minimum` at a level
    /// no lower than the row's minimum.
    AuthnRequestLoa { step: String },
    /// The step's AuthnRequest has an ID no other login of the scenario used (judged where the
    /// scenario has more than one login), and an IssueInstant within a few minutes of when it
    /// was posted.
    AuthnRequestFresh { step: String },
    /// The step's ArtifactResolve, as the mock TVS recorded it, is signed like an AuthnRequest.
    ArtifactResolveSigned { step: String },
    /// The step's ArtifactResolve came over mutual TLS with a certificate naming the DVA's
    /// back-channel host.
    ArtifactResolveMutualTls { step: String },
    /// Every artifact delivered to the DVA in the step was resolved once per delivery, in the
    /// step.
    ArtifactResolvedOnce { step: String },
    /// The DVA's decision on the step's login follows the row's minimum level of assurance:
    /// a login at or above it (the level the mock TVS recorded sending) gets a code, one below
    /// it `access_denied` after the artifact was resolved. A refusal passes only if `control`
    /// (a login at the row's level) got a code.
    LoaRespected { step: String, control: String },
}

/// Where in the flow a refusal must happen: what the recorded exchanges must show before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// At the authorization request: before the browser is ever sent to the TVS.
    #[default]
    Request,
    /// After the login: the DVA resolved the artifact at the mock TVS, then refused.
    Login,
    /// At the consent screen: after the login, the person's answer was posted, then refused.
    Consent,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Request => "the authorization request",
            Stage::Login => "the login",
            Stage::Consent => "the consent screen",
        }
    }
}

fn default_max_page_entries() -> usize {
    1000
}

impl CheckSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::CodeIssued { .. } => "code-issued",
            CheckSpec::StateEchoed { .. } => "state-echoed",
            CheckSpec::ErrorRedirect { .. } => "error-redirect",
            CheckSpec::LoginRefused { .. } => "login-refused",
            CheckSpec::SameRefusal { .. } => "same-refusal",
            CheckSpec::EntityNotFetched { .. } => "entity-not-fetched",
            CheckSpec::TokenIssued { .. } => "token-issued",
            CheckSpec::TokenRefused { .. } => "token-refused",
            CheckSpec::FhirSearchset { .. } => "fhir-searchset",
            CheckSpec::ErrorPage { .. } => "error-page",
            CheckSpec::ResourceRefused { .. } => "resource-refused",
            CheckSpec::RefreshRotated { .. } => "refresh-rotated",
            CheckSpec::NoBsnInLinks { .. } => "no-bsn-in-links",
            CheckSpec::WithinBudget { .. } => "within-budget",
            CheckSpec::DatasetComplete { .. } => "dataset-complete",
            CheckSpec::ReferencesResolve { .. } => "references-resolve",
            CheckSpec::CodingsComplete { .. } => "codings-complete",
            CheckSpec::ProfileValid { .. } => "profile-valid",
            CheckSpec::NoBsnInBundle { .. } => "no-bsn-in-bundle",
            CheckSpec::Paged { .. } => "paged",
            CheckSpec::TlsVersions { .. } => "tls-versions",
            CheckSpec::Tls13Supported { .. } => "tls13-supported",
            CheckSpec::TlsConfiguration { .. } => "tls-configuration",
            CheckSpec::CertificateShape { .. } => "certificate-shape",
            CheckSpec::CertificateExpiry { .. } => "certificate-expiry",
            CheckSpec::ClientCertificateRefused { .. } => "client-certificate-refused",
            CheckSpec::AuthnRequestSigned { .. } => "authn-request-signed",
            CheckSpec::AuthnRequestAcsIndex { .. } => "authn-request-acs-index",
            CheckSpec::AuthnRequestIssuer { .. } => "authn-request-issuer",
            CheckSpec::AuthnRequestDestination { .. } => "authn-request-destination",
            CheckSpec::AuthnRequestLoa { .. } => "authn-request-loa",
            CheckSpec::AuthnRequestFresh { .. } => "authn-request-fresh",
            CheckSpec::ArtifactResolveSigned { .. } => "artifact-resolve-signed",
            CheckSpec::ArtifactResolveMutualTls { .. } => "artifact-resolve-mutual-tls",
            CheckSpec::ArtifactResolvedOnce { .. } => "artifact-resolved-once",
            CheckSpec::LoaRespected { .. } => "loa-respected",
        }
    }

    pub fn step(&self) -> &str {
        match self {
            CheckSpec::CodeIssued { step }
            | CheckSpec::StateEchoed { step }
            | CheckSpec::ErrorRedirect { step, .. }
            | CheckSpec::LoginRefused { step, .. }
            | CheckSpec::SameRefusal { step, .. }
            | CheckSpec::EntityNotFetched { step }
            | CheckSpec::TokenIssued { step }
            | CheckSpec::TokenRefused { step, .. }
            | CheckSpec::FhirSearchset { step }
            | CheckSpec::ErrorPage { step, .. }
            | CheckSpec::ResourceRefused { step, .. }
            | CheckSpec::RefreshRotated { step, .. }
            | CheckSpec::NoBsnInLinks { step }
            | CheckSpec::WithinBudget { step, .. }
            | CheckSpec::DatasetComplete { step }
            | CheckSpec::ReferencesResolve { step }
            | CheckSpec::CodingsComplete { step }
            | CheckSpec::ProfileValid { step }
            | CheckSpec::NoBsnInBundle { step }
            | CheckSpec::Paged { step, .. }
            | CheckSpec::TlsVersions { step }
            | CheckSpec::Tls13Supported { step }
            | CheckSpec::TlsConfiguration { step }
            | CheckSpec::CertificateShape { step }
            | CheckSpec::CertificateExpiry { step }
            | CheckSpec::ClientCertificateRefused { step, .. }
            | CheckSpec::AuthnRequestSigned { step }
            | CheckSpec::AuthnRequestAcsIndex { step }
            | CheckSpec::AuthnRequestIssuer { step }
            | CheckSpec::AuthnRequestDestination { step }
            | CheckSpec::AuthnRequestLoa { step }
            | CheckSpec::AuthnRequestFresh { step }
            | CheckSpec::ArtifactResolveSigned { step }
            | CheckSpec::ArtifactResolveMutualTls { step }
            | CheckSpec::ArtifactResolvedOnce { step }
            | CheckSpec::LoaRespected { step, .. } => step,
        }
    }

    /// The control step of a negative check: the same request without the fault, whose
    /// acceptance proves that the refusal has the fault as its cause.
    pub fn control(&self) -> Option<&str> {
        match self {
            CheckSpec::ErrorRedirect { control, .. }
            | CheckSpec::LoginRefused { control, .. }
            | CheckSpec::SameRefusal { control, .. }
            | CheckSpec::TokenRefused { control, .. }
            | CheckSpec::ErrorPage { control, .. }
            | CheckSpec::ResourceRefused { control, .. }
            | CheckSpec::ClientCertificateRefused { control, .. }
            | CheckSpec::LoaRespected { control, .. } => Some(control),
            _ => None,
        }
    }

    /// The step actions this check can judge.
    fn judges(&self) -> &'static [&'static str] {
        match self {
            CheckSpec::CodeIssued { .. }
            | CheckSpec::StateEchoed { .. }
            | CheckSpec::ErrorRedirect { .. }
            | CheckSpec::LoginRefused { .. }
            | CheckSpec::ErrorPage { .. }
            | CheckSpec::SameRefusal { .. }
            | CheckSpec::EntityNotFetched { .. }
            | CheckSpec::AuthnRequestSigned { .. }
            | CheckSpec::AuthnRequestAcsIndex { .. }
            | CheckSpec::AuthnRequestIssuer { .. }
            | CheckSpec::AuthnRequestDestination { .. }
            | CheckSpec::AuthnRequestLoa { .. }
            | CheckSpec::AuthnRequestFresh { .. }
            | CheckSpec::ArtifactResolveSigned { .. }
            | CheckSpec::ArtifactResolveMutualTls { .. }
            | CheckSpec::ArtifactResolvedOnce { .. }
            | CheckSpec::LoaRespected { .. } => &["authorize"],
            CheckSpec::TokenIssued { .. } | CheckSpec::TokenRefused { .. } => &["token", "refresh"],
            CheckSpec::RefreshRotated { .. } => &["refresh"],
            CheckSpec::FhirSearchset { .. }
            | CheckSpec::ResourceRefused { .. }
            | CheckSpec::NoBsnInLinks { .. }
            | CheckSpec::DatasetComplete { .. }
            | CheckSpec::ReferencesResolve { .. }
            | CheckSpec::CodingsComplete { .. }
            | CheckSpec::ProfileValid { .. }
            | CheckSpec::NoBsnInBundle { .. }
            | CheckSpec::Paged { .. } => &["fhir"],
            CheckSpec::WithinBudget { .. } => &["token", "refresh", "fhir"],
            CheckSpec::TlsVersions { .. }
            | CheckSpec::Tls13Supported { .. }
            | CheckSpec::TlsConfiguration { .. }
            | CheckSpec::CertificateShape { .. }
            | CheckSpec::CertificateExpiry { .. } => &["tls-scan"],
            CheckSpec::ClientCertificateRefused { .. } => &["token", "fhir"],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}: field `{field}`: {message}")]
    Semantic {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    #[error("{path}: scenario id {id:?} is used by {other} too")]
    DuplicateId {
        path: PathBuf,
        id: String,
        other: PathBuf,
    },
}

/// Line and column of a TOML error. Inside internally tagged tables serde's span covers the
/// whole array, so an unknown field is found by its own key instead.
pub(crate) fn toml_error_position(text: &str, e: &toml::de::Error) -> (usize, usize) {
    let key = e
        .message()
        .split("unknown field `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    if let Some(n) = key.and_then(|k| {
        text.lines()
            .position(|l| l.trim_start().split(['=', ' ']).next() == Some(k))
    }) {
        let column = text
            .lines()
            .nth(n)
            .map_or(1, |l| l.len() - l.trim_start().len() + 1);
        return (n + 1, column);
    }
    e.span().map_or((1, 1), |s| line_col(text, s.start))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Parses and validates one scenario file's text.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
        let (line, column) = toml_error_position(text, &e);
        ScenarioError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    validate(path, text, &scenario)?;
    scenario.source = Source {
        path: path.to_path_buf(),
        text: text.into(),
    };
    Ok(scenario)
}

/// The line of `field` inside the `index`-th `[[block]]` table (1 when not found).
fn line_in_block(text: &str, block: &str, index: usize, field: &str) -> usize {
    let header = format!("[[{block}]]");
    let mut seen = 0;
    let mut inside = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("[[") || t.starts_with('[') {
            inside = t.starts_with(&header) && {
                seen += 1;
                seen == index + 1
            };
            continue;
        }
        if inside && t.split(['=', ' ']).next() == Some(field) {
            return n + 1;
        }
    }
    1
}

fn validate(path: &Path, text: &str, s: &Scenario) -> Result<(), ScenarioError> {
    let err = |line: usize, field: &str, message: String| ScenarioError::Semantic {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
        message,
    };
    if s.id.is_empty()
        || !s
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("id"))
            .map_or(1, |n| n + 1);
        return Err(err(
            line,
            "id",
            "must be non-empty and use only letters, digits, '.', '-' and '_'".into(),
        ));
    }
    let mut actions: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, step) in s.steps.iter().enumerate() {
        let at = |field: &str, message: String| {
            err(line_in_block(text, "step", i, field), field, message)
        };
        let refs: Vec<(&str, &str, &[&str])> = match step {
            Step::Authorize(_) | Step::TlsScan(_) => vec![],
            Step::Token(t) => vec![(&t.code_from, "code_from", &["authorize"])],
            Step::Refresh(r) => vec![(&r.token_from, "token_from", &["token", "refresh"])],
            Step::Wait(w) => match (w.past, &w.token_from) {
                (Expiry::AccessToken, Some(t)) => {
                    vec![(t.as_str(), "token_from", &["token", "refresh"])]
                }
                (Expiry::AccessToken, None) => {
                    return Err(at(
                        "past",
                        "past = \"access-token\" needs token_from".into(),
                    ));
                }
                (Expiry::Code, Some(_)) => {
                    return Err(at(
                        "token_from",
                        "token_from is only for past = \"access-token\"".into(),
                    ));
                }
                (Expiry::Code, None) => vec![],
            },
            Step::Fhir(f) => {
                if crate::fixtures::gp_query(&f.query).is_none() {
                    let known: Vec<&str> =
                        crate::fixtures::GP_QUERIES.iter().map(|q| q.name).collect();
                    return Err(at(
                        "query",
                        format!("unknown query {:?}; known: {}", f.query, known.join(", ")),
                    ));
                }
                match (&f.token_from, f.bearer) {
                    (Some(t), Bearer::FromStep) => {
                        vec![(t.as_str(), "token_from", &["token", "refresh"])]
                    }
                    (None, Bearer::FromStep) => return Err(at(
                        "token_from",
                        "a fhir step needs token_from unless bearer is \"missing\" or \"unknown\""
                            .into(),
                    )),
                    (Some(_), _) => {
                        return Err(at(
                            "token_from",
                            "token_from is not used with bearer \"missing\" or \"unknown\"".into(),
                        ));
                    }
                    (None, _) => vec![],
                }
            }
        };
        for (reference, field, allowed) in refs {
            match actions.get(reference) {
                Some(action) if allowed.contains(action) => {}
                Some(action) => {
                    return Err(at(
                        field,
                        format!(
                            "step {reference:?} is a {action} step; expected {}",
                            allowed.join(" or ")
                        ),
                    ));
                }
                None => return Err(at(field, format!("no earlier step with id {reference:?}"))),
            }
        }
        if actions.insert(step.id(), step.action()).is_some() {
            return Err(at("id", format!("step id {:?} is used twice", step.id())));
        }
    }
    if s.checks.is_empty() {
        return Err(err(
            1,
            "check",
            "a scenario needs at least one check".into(),
        ));
    }
    for (i, check) in s.checks.iter().enumerate() {
        let step = check.step();
        let at = |message: String| err(line_in_block(text, "check", i, "step"), "step", message);
        match actions.get(step) {
            Some(action) if check.judges().contains(action) => {}
            Some(action) => {
                return Err(at(format!(
                    "a {} check cannot judge the {action} step {step:?}",
                    check.kind()
                )));
            }
            None => return Err(at(format!("no step with id {step:?}"))),
        }
        if let Some(control) = check.control() {
            let line = line_in_block(text, "check", i, "control");
            match actions.get(control) {
                _ if control == step => {
                    return Err(err(
                        line,
                        "control",
                        "the control must be another step than the one judged".into(),
                    ));
                }
                Some(action) if check.judges().contains(action) => {}
                Some(action) => {
                    return Err(err(
                        line,
                        "control",
                        format!(
                            "a {} check needs a {} step as its control; {control:?} is a {action} step",
                            check.kind(),
                            check.judges().join(" or ")
                        ),
                    ));
                }
                None => {
                    return Err(err(line, "control", format!("no step with id {control:?}")));
                }
            }
        }
        if let CheckSpec::SameRefusal { other, .. } = check {
            if actions.get(other.as_str()) != Some(&"authorize") || other == step {
                let line = line_in_block(text, "check", i, "other");
                return Err(err(
                    line,
                    "other",
                    format!("{other:?} is not another authorize step"),
                ));
            }
        }
        if let CheckSpec::RefreshRotated { previous, .. } = check {
            if !matches!(
                actions.get(previous.as_str()),
                Some(&"token") | Some(&"refresh")
            ) {
                let line = line_in_block(text, "check", i, "previous");
                return Err(err(
                    line,
                    "previous",
                    format!("{previous:?} is not a token or refresh step"),
                ));
            }
        }
    }
    Ok(())
}

/// The scenarios shipped with koppeltest, embedded so `koppeltest run` works anywhere.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "scenarios/auth-consent-refused.toml",
        include_str!("../scenarios/auth-consent-refused.toml"),
    ),
    (
        "scenarios/auth-error-codes.toml",
        include_str!("../scenarios/auth-error-codes.toml"),
    ),
    (
        "scenarios/auth-foreign-redirect-uri.toml",
        include_str!("../scenarios/auth-foreign-redirect-uri.toml"),
    ),
    (
        "scenarios/auth-http-redirect-uri.toml",
        include_str!("../scenarios/auth-http-redirect-uri.toml"),
    ),
    (
        "scenarios/auth-login-cancelled.toml",
        include_str!("../scenarios/auth-login-cancelled.toml"),
    ),
    (
        "scenarios/auth-missing-client-id.toml",
        include_str!("../scenarios/auth-missing-client-id.toml"),
    ),
    (
        "scenarios/auth-missing-correlation-id.toml",
        include_str!("../scenarios/auth-missing-correlation-id.toml"),
    ),
    (
        "scenarios/auth-missing-request-id.toml",
        include_str!("../scenarios/auth-missing-request-id.toml"),
    ),
    (
        "scenarios/auth-missing-response-type.toml",
        include_str!("../scenarios/auth-missing-response-type.toml"),
    ),
    (
        "scenarios/auth-missing-state.toml",
        include_str!("../scenarios/auth-missing-state.toml"),
    ),
    (
        "scenarios/auth-no-data-for-person.toml",
        include_str!("../scenarios/auth-no-data-for-person.toml"),
    ),
    (
        "scenarios/auth-redirect-uri-fragment.toml",
        include_str!("../scenarios/auth-redirect-uri-fragment.toml"),
    ),
    (
        "scenarios/auth-redirect-uri-query.toml",
        include_str!("../scenarios/auth-redirect-uri-query.toml"),
    ),
    (
        "scenarios/auth-scope-gegevensdienst-id.toml",
        include_str!("../scenarios/auth-scope-gegevensdienst-id.toml"),
    ),
    (
        "scenarios/auth-scope-naam-id.toml",
        include_str!("../scenarios/auth-scope-naam-id.toml"),
    ),
    (
        "scenarios/auth-scope-provider-name.toml",
        include_str!("../scenarios/auth-scope-provider-name.toml"),
    ),
    (
        "scenarios/auth-state-echoed.toml",
        include_str!("../scenarios/auth-state-echoed.toml"),
    ),
    (
        "scenarios/auth-unknown-client-id.toml",
        include_str!("../scenarios/auth-unknown-client-id.toml"),
    ),
    (
        "scenarios/auth-unsupported-response-type.toml",
        include_str!("../scenarios/auth-unsupported-response-type.toml"),
    ),
    (
        "scenarios/dataset-bakker.toml",
        include_str!("../scenarios/dataset-bakker.toml"),
    ),
    (
        "scenarios/dataset-de-vries.toml",
        include_str!("../scenarios/dataset-de-vries.toml"),
    ),
    (
        "scenarios/dataset-large-record.toml",
        include_str!("../scenarios/dataset-large-record.toml"),
    ),
    (
        "scenarios/fhir-expired-token.toml",
        include_str!("../scenarios/fhir-expired-token.toml"),
    ),
    (
        "scenarios/fhir-insufficient-scope.toml",
        include_str!("../scenarios/fhir-insufficient-scope.toml"),
    ),
    (
        "scenarios/fhir-missing-token.toml",
        include_str!("../scenarios/fhir-missing-token.toml"),
    ),
    (
        "scenarios/fhir-no-bsn-in-links.toml",
        include_str!("../scenarios/fhir-no-bsn-in-links.toml"),
    ),
    (
        "scenarios/fhir-unknown-token.toml",
        include_str!("../scenarios/fhir-unknown-token.toml"),
    ),
    (
        "scenarios/fhir-unsupported-version.toml",
        include_str!("../scenarios/fhir-unsupported-version.toml"),
    ),
    (
        "scenarios/happy-path.toml",
        include_str!("../scenarios/happy-path.toml"),
    ),
    (
        "scenarios/refresh-rotation.toml",
        include_str!("../scenarios/refresh-rotation.toml"),
    ),
    (
        "scenarios/refresh-wrong-grant-type.toml",
        include_str!("../scenarios/refresh-wrong-grant-type.toml"),
    ),
    (
        "scenarios/saml-artifact-replay.toml",
        include_str!("../scenarios/saml-artifact-replay.toml"),
    ),
    (
        "scenarios/saml-assertion-unsigned.toml",
        include_str!("../scenarios/saml-assertion-unsigned.toml"),
    ),
    (
        "scenarios/saml-digest-in-comment.toml",
        include_str!("../scenarios/saml-digest-in-comment.toml"),
    ),
    (
        "scenarios/saml-doctype-entities.toml",
        include_str!("../scenarios/saml-doctype-entities.toml"),
    ),
    (
        "scenarios/saml-duplicate-ids.toml",
        include_str!("../scenarios/saml-duplicate-ids.toml"),
    ),
    (
        "scenarios/saml-entity-expansion.toml",
        include_str!("../scenarios/saml-entity-expansion.toml"),
    ),
    (
        "scenarios/saml-expired-artifact.toml",
        include_str!("../scenarios/saml-expired-artifact.toml"),
    ),
    (
        "scenarios/saml-expired-assertion.toml",
        include_str!("../scenarios/saml-expired-assertion.toml"),
    ),
    (
        "scenarios/saml-external-entity.toml",
        include_str!("../scenarios/saml-external-entity.toml"),
    ),
    (
        "scenarios/saml-foreign-key.toml",
        include_str!("../scenarios/saml-foreign-key.toml"),
    ),
    (
        "scenarios/saml-forged-reference.toml",
        include_str!("../scenarios/saml-forged-reference.toml"),
    ),
    (
        "scenarios/saml-key-transport-rsa-1-5.toml",
        include_str!("../scenarios/saml-key-transport-rsa-1-5.toml"),
    ),
    (
        "scenarios/saml-missing-audience.toml",
        include_str!("../scenarios/saml-missing-audience.toml"),
    ),
    (
        "scenarios/saml-missing-encryption-method.toml",
        include_str!("../scenarios/saml-missing-encryption-method.toml"),
    ),
    (
        "scenarios/saml-missing-key-recipient.toml",
        include_str!("../scenarios/saml-missing-key-recipient.toml"),
    ),
    (
        "scenarios/saml-name-id-cdata.toml",
        include_str!("../scenarios/saml-name-id-cdata.toml"),
    ),
    (
        "scenarios/saml-name-id-comment.toml",
        include_str!("../scenarios/saml-name-id-comment.toml"),
    ),
    (
        "scenarios/saml-name-id-processing-instruction.toml",
        include_str!("../scenarios/saml-name-id-processing-instruction.toml"),
    ),
    (
        "scenarios/saml-not-yet-valid.toml",
        include_str!("../scenarios/saml-not-yet-valid.toml"),
    ),
    (
        "scenarios/saml-padding-oracle.toml",
        include_str!("../scenarios/saml-padding-oracle.toml"),
    ),
    (
        "scenarios/saml-response-unsigned.toml",
        include_str!("../scenarios/saml-response-unsigned.toml"),
    ),
    (
        "scenarios/saml-sha1-signature.toml",
        include_str!("../scenarios/saml-sha1-signature.toml"),
    ),
    (
        "scenarios/saml-service-provider-messages.toml",
        include_str!("../scenarios/saml-service-provider-messages.toml"),
    ),
    (
        "scenarios/saml-signature-object.toml",
        include_str!("../scenarios/saml-signature-object.toml"),
    ),
    (
        "scenarios/saml-status-authn-failed.toml",
        include_str!("../scenarios/saml-status-authn-failed.toml"),
    ),
    (
        "scenarios/saml-status-no-authn-context.toml",
        include_str!("../scenarios/saml-status-no-authn-context.toml"),
    ),
    (
        "scenarios/saml-status-request-denied.toml",
        include_str!("../scenarios/saml-status-request-denied.toml"),
    ),
    (
        "scenarios/saml-two-assertions.toml",
        include_str!("../scenarios/saml-two-assertions.toml"),
    ),
    (
        "scenarios/saml-two-signed-info.toml",
        include_str!("../scenarios/saml-two-signed-info.toml"),
    ),
    (
        "scenarios/saml-unknown-source-id.toml",
        include_str!("../scenarios/saml-unknown-source-id.toml"),
    ),
    (
        "scenarios/saml-unsolicited.toml",
        include_str!("../scenarios/saml-unsolicited.toml"),
    ),
    (
        "scenarios/saml-wrong-destination.toml",
        include_str!("../scenarios/saml-wrong-destination.toml"),
    ),
    (
        "scenarios/saml-wrong-in-response-to.toml",
        include_str!("../scenarios/saml-wrong-in-response-to.toml"),
    ),
    (
        "scenarios/saml-wrong-issuer.toml",
        include_str!("../scenarios/saml-wrong-issuer.toml"),
    ),
    (
        "scenarios/saml-wrong-key-recipient.toml",
        include_str!("../scenarios/saml-wrong-key-recipient.toml"),
    ),
    (
        "scenarios/saml-wrong-recipient.toml",
        include_str!("../scenarios/saml-wrong-recipient.toml"),
    ),
    (
        "scenarios/saml-xsw1.toml",
        include_str!("../scenarios/saml-xsw1.toml"),
    ),
    (
        "scenarios/saml-xsw2.toml",
        include_str!("../scenarios/saml-xsw2.toml"),
    ),
    (
        "scenarios/saml-xsw3.toml",
        include_str!("../scenarios/saml-xsw3.toml"),
    ),
    (
        "scenarios/saml-xsw4.toml",
        include_str!("../scenarios/saml-xsw4.toml"),
    ),
    (
        "scenarios/saml-xsw5.toml",
        include_str!("../scenarios/saml-xsw5.toml"),
    ),
    (
        "scenarios/saml-xsw6.toml",
        include_str!("../scenarios/saml-xsw6.toml"),
    ),
    (
        "scenarios/saml-xsw7.toml",
        include_str!("../scenarios/saml-xsw7.toml"),
    ),
    (
        "scenarios/saml-xsw8.toml",
        include_str!("../scenarios/saml-xsw8.toml"),
    ),
    (
        "scenarios/tls-authorization-endpoint.toml",
        include_str!("../scenarios/tls-authorization-endpoint.toml"),
    ),
    (
        "scenarios/tls-client-certificate-resource.toml",
        include_str!("../scenarios/tls-client-certificate-resource.toml"),
    ),
    (
        "scenarios/tls-client-certificate-token.toml",
        include_str!("../scenarios/tls-client-certificate-token.toml"),
    ),
    (
        "scenarios/tls-resource-endpoint.toml",
        include_str!("../scenarios/tls-resource-endpoint.toml"),
    ),
    (
        "scenarios/tls-token-endpoint.toml",
        include_str!("../scenarios/tls-token-endpoint.toml"),
    ),
    (
        "scenarios/token-certificate-mismatch.toml",
        include_str!("../scenarios/token-certificate-mismatch.toml"),
    ),
    (
        "scenarios/token-client-certificate.toml",
        include_str!("../scenarios/token-client-certificate.toml"),
    ),
    (
        "scenarios/token-code-replay.toml",
        include_str!("../scenarios/token-code-replay.toml"),
    ),
    (
        "scenarios/token-empty-client-id.toml",
        include_str!("../scenarios/token-empty-client-id.toml"),
    ),
    (
        "scenarios/token-expired-code.toml",
        include_str!("../scenarios/token-expired-code.toml"),
    ),
    (
        "scenarios/token-form-body-required.toml",
        include_str!("../scenarios/token-form-body-required.toml"),
    ),
    (
        "scenarios/token-other-client.toml",
        include_str!("../scenarios/token-other-client.toml"),
    ),
    (
        "scenarios/token-redirect-uri-different.toml",
        include_str!("../scenarios/token-redirect-uri-different.toml"),
    ),
    (
        "scenarios/token-redirect-uri-double-encoded.toml",
        include_str!("../scenarios/token-redirect-uri-double-encoded.toml"),
    ),
    (
        "scenarios/token-redirect-uri-missing.toml",
        include_str!("../scenarios/token-redirect-uri-missing.toml"),
    ),
    (
        "scenarios/token-replay-revokes.toml",
        include_str!("../scenarios/token-replay-revokes.toml"),
    ),
    (
        "scenarios/token-response-time.toml",
        include_str!("../scenarios/token-response-time.toml"),
    ),
    (
        "scenarios/tvs-loa-basis.toml",
        include_str!("../scenarios/tvs-loa-basis.toml"),
    ),
    (
        "scenarios/tvs-loa-hoog.toml",
        include_str!("../scenarios/tvs-loa-hoog.toml"),
    ),
    (
        "scenarios/tvs-loa-midden.toml",
        include_str!("../scenarios/tvs-loa-midden.toml"),
    ),
    (
        "scenarios/tvs-loa-substantieel.toml",
        include_str!("../scenarios/tvs-loa-substantieel.toml"),
    ),
    (
        "scenarios/tvs-tampered-signature.toml",
        include_str!("../scenarios/tvs-tampered-signature.toml"),
    ),
    (
        "scenarios/tvs-wrong-audience.toml",
        include_str!("../scenarios/tvs-wrong-audience.toml"),
    ),
];

/// Parses a set of (path, text) pairs, refusing duplicate ids.
pub fn parse_all<'a>(
    files: impl IntoIterator<Item = (PathBuf, &'a str)>,
) -> Result<Vec<Scenario>, ScenarioError> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for (path, text) in files {
        let s = parse(&path, text)?;
        if let Some(other) = seen.insert(s.id.clone(), path.clone()) {
            return Err(ScenarioError::DuplicateId {
                path,
                id: s.id,
                other,
            });
        }
        out.push(s);
    }
    Ok(out)
}

pub fn embedded() -> Result<Vec<Scenario>, ScenarioError> {
    parse_all(EMBEDDED.iter().map(|(p, t)| (PathBuf::from(p), *t)))
}

/// Every `*.toml` in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let read_err = |source| ScenarioError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut texts = Vec::new();
    for p in &paths {
        texts.push(
            std::fs::read_to_string(p).map_err(|source| ScenarioError::Read {
                path: p.clone(),
                source,
            })?,
        );
    }
    parse_all(paths.into_iter().zip(texts.iter().map(String::as_str)))
}

/// Scenario ids, for checking declarations against what exists.
pub fn ids(scenarios: &[Scenario]) -> BTreeSet<&str> {
    scenarios.iter().map(|s| s.id.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "x.ok"
title = "t"
description = "d"

[[step]]
id = "auth"
action = "authorize"

[[step]]
id = "tok"
action = "token"
code_from = "auth"

[[check]]
kind = "token-issued"
step = "tok"
"#;

    fn err(text: &str) -> String {
        parse(Path::new("scenarios/x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn embedded_scenarios_all_load() {
        let all = embedded().unwrap();
        assert_eq!(all.len(), EMBEDDED.len());
    }

    #[test]
    fn a_misspelt_field_names_file_line_and_field() {
        let bad = GOOD.replace("code_from", "code_form");
        let e = err(&bad);
        assert!(e.starts_with("scenarios/x.toml:"), "{e}");
        assert!(e.contains("code_form"), "{e}");
        let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
        assert_eq!(line, 13, "{e}");
    }

    #[test]
    fn references_to_missing_or_wrong_steps_are_errors_with_lines() {
        let e = err(&GOOD.replace("code_from = \"auth\"", "code_from = \"nope\""));
        assert_eq!(
            e,
            "scenarios/x.toml:13: field `code_from`: no earlier step with id \"nope\""
        );
        let e = err(&GOOD.replace("step = \"tok\"", "step = \"auth\""));
        assert!(
            e.contains(":17: field `step`: a token-issued check cannot judge the authorize step"),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"token-issued\"", "kind = \"token-isued\""));
        assert!(e.contains("token-isued"), "{e}");
    }

    #[test]
    fn unknown_queries_list_the_known_ones() {
        let text = format!(
            "{GOOD}\n[[step]]\nid = \"f\"\naction = \"fhir\"\nquery = \"labs\"\ntoken_from = \"tok\"\n"
        );
        let e = err(&text);
        assert!(
            e.contains("unknown query \"labs\"") && e.contains("results"),
            "{e}"
        );
    }
}
