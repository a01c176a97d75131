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
    /// An unknown or missing client_id is accepted at the authorization endpoint (brief §10.4;
    /// §3).
    ClientIdUnchecked,
    /// A redirect_uri on another host, over http, or with a query or fragment is accepted
    /// (brief §10.4).
    RedirectUriUnchecked,
    /// With an untrusted client_id or redirect_uri the DVA redirects with an error instead of
    /// showing an error page (brief §10.4; RFC 6749 §4.1.2.1).
    RedirectsWhereItMustNot,
    /// Any scope is accepted, in no MedMij dialect (brief §10.5).
    ScopeUnchecked,
    /// Authorization requests without MedMij-Request-ID or X-Correlation-ID are accepted
    /// (brief §10.6; core.authint.208).
    MedmijHeadersNotRequired,
    /// The redirect with the code carries a fixed state instead of the PGO's (brief §10.7).
    StateFixed,
    /// The token endpoint does not compare redirect_uri with the authorization request
    /// (brief §10.2; core.tknint.205).
    RedirectUriNotCompared,
    /// The token endpoint decodes redirect_uri twice, accepting a double-encoded one (brief §10.1).
    RedirectUriDecodedTwice,
    /// Token parameters in the query string and an empty client_id are accepted (brief §10.8).
    LegacyTokenRequestAccepted,
    /// A code is exchanged for whichever client presents it (brief §4; RFC 6749 §4.1.3).
    CodeNotBoundToClient,
    /// A replayed code is refused, but the tokens issued for it stay valid (RFC 6749 §4.1.2).
    ReplayKeepsTokens,
    /// The refresh grant returns the same refresh token, which stays valid (brief §10.9).
    RefreshNotRotated,
    /// An unknown grant_type such as `refresh_code` is treated as refresh_token (brief §10.9).
    WrongGrantTypeAccepted,
    /// The resource endpoint serves gegevensdienst 49 to a token for another service (brief §5).
    ScopeNotEnforcedAtResource,
    /// An unsupported Accept or FHIR version is answered anyway (brief §10.10).
    AcceptHeaderIgnored,
    /// The resource endpoint needs a `patient=` parameter (brief §10.13).
    PatientParamRequired,
    /// The Bundle's self link names the patient by BSN (brief §10.13; §5).
    BsnInSelfLink,
    /// An invalid token gets 401 without `WWW-Authenticate` (brief §10.14; RFC 6750 §3).
    NoBearerChallenge,
    /// The token endpoint answers after 4 s, beyond a short test budget (brief §10.17;
    /// core.tknint.206 allows 10 s).
    SlowTokenEndpoint,
    /// Only `naam~id` scopes (1.x) are understood; the 1.0 id and the 2.2 provider name are
    /// refused (brief §10.5: the wrong scope grammar for the release).
    ScopeNaamIdOnly,
    /// Only the 2.2 provider-name scope is understood; `naam~id` and bare ids are refused
    /// (brief §10.5).
    ScopeProviderNameOnly,
    /// The client certificate is required, but its name is not compared with client_id
    /// (brief §4; RFC 8705 §2).
    ClientCertNameUnchecked,
    /// The token response lacks `Cache-Control: no-store` (RFC 6749 §5.1).
    TokenResponseCacheable,
    /// The resource endpoint answers after 4 s, beyond a short test budget (brief §10.17;
    /// core.rscint.202 allows 60 s).
    SlowResourceEndpoint,
    /// The FHIR API answers under `<base>/fhir/…` although the ZAL's base already ends in
    /// `/fhir` (brief §10.11, seen from the DVA side).
    FhirBaseDoubled,
    /// An expired authorization code is still exchanged (brief §10.3).
    CodeExpiryUnchecked,
    /// An expired access token is still served (brief §10.14).
    TokenExpiryUnchecked,
    /// S and O journal lines are served in Compositions (brief §9; Nictiz qualification).
    SoLinesLeaked,
    /// The S and O sections are removed, but their journal entries stay in the Composition's
    /// `contained` resources (brief §9: the S/O content still reaches the PGO).
    SoEntriesLeaked,
    /// Personal work notes of the GP are served (brief §9).
    WorkNotesLeaked,
    /// Information about or from a third party is served (brief §9).
    ThirdPartyLeaked,
    /// Lab results older than 14 months are served (brief §9).
    NoLabWindow,
    /// E and P lines from before the practice started online access are served (brief §9).
    EpBeforeStartLeaked,
    /// Ended medication agreements are served as current (the periodofuse filter is ignored).
    EndedMedicationCurrent,
    /// Inactive medication hypersensitivities are left out (brief §9: inactive ones too).
    InactiveAllergyDropped,
    /// Finished episodes, even with attention value, are left out (brief §9).
    FinishedEpisodesDropped,
    /// `_include=Patient:general-practitioner` is ignored (brief §9).
    GeneralPractitionerNotIncluded,
    /// References point at resources that do not exist (brief §9: references must resolve).
    BrokenReferences,
    /// One token-endpoint answer in 50 comes after the row's `slow_answer_ms` (11 s by
    /// default, past core.tknint.206's 10 s): 98 % within budget, where MedMij demands 99.5 %.
    /// Which answers, from the row's `seed`; judged by `koppeltest soak`.
    #[serde(rename = "token-slow-1-in-50")]
    TokenSlow1In50,
    /// One resource-endpoint answer in 20 is `503 Service Unavailable`: 95 % available, where
    /// core.rscint.202 demands 98.5 %. Which answers, from the row's `seed`; judged by
    /// `koppeltest soak`.
    #[serde(rename = "resource-unavailable-1-in-20")]
    ResourceUnavailable1In20,
    /// Codings come without their `system` (Nictiz qualification: system and code).
    CodingsWithoutSystem,
    /// A large result comes in one Bundle, however big: no paging, no `next` link (brief §9).
    NoPaging,
    /// The Patient resource carries the BSN instead of masking it (Nictiz qualification: no
    /// BSN anywhere in the Bundle).
    BsnInPatient,
    /// Dates are written the Dutch way (`23-11-2026`), not as FHIR dates (profile validation).
    DutchDates,
    /// Required elements (`status`) are left out (profile validation).
    StatusMissing,
    /// The token response leaves out `scope`, so the PGO cannot see what was granted
    /// (RFC 6749 §5.1; MedMij token response).
    TokenScopeMissing,
    /// A cancelled login ends on a DVA page instead of returning to the PGO with access_denied
    /// (brief §8, §10.18: "cancel turned into a dead end").
    CancelDeadEnd,
    /// A refused consent is ignored: the code is issued anyway (brief §2 step 5).
    ConsentIgnored,
    /// The beschikbaarheidstoets is skipped: a person without a record gets a code (brief §2).
    AvailabilityUnchecked,
    /// Error redirects carry no error_description (MedMij "duiding van fouten", brief §3).
    ErrorDescriptionMissing,
    /// An authorization request without state is accepted (brief §3 [U]).
    StateNotRequired,
    /// A missing or unsupported response_type is accepted as `code` (RFC 6749 §4.1.2.1).
    ResponseTypeUnchecked,
    /// A resource request without a token, or with one the DVA never issued, is served
    /// (brief §10.14; RFC 6750 §3).
    BearerUnchecked,
    /// The DVA speaks TLS 1.3 only on every listener: a client limited to TLS 1.2, which MedMij
    /// makes mandatory, cannot connect (brief §7).
    Tls13Only,
    /// Both channels are served by OpenSSL accepting TLS 1.0 and 1.1, with the CBC-SHA suites
    /// they need, and no TLS 1.3: an old stack (brief §7: no TLS ≤ 1.1; NCSC).
    LegacyTlsAccepted,
    /// Both channels are served by OpenSSL offering a static-RSA CBC-SHA suite besides the good
    /// ones (brief §7; NCSC 2021: phase out, 2025: insufficient).
    WeakSuiteAccepted,
    /// The front channel presents a wildcard certificate (brief §7: no wildcard).
    WildcardFrontCertificate,
    /// The back channel presents a public OV certificate instead of a private-G1-shaped one
    /// (brief §7).
    PublicCertificateOnBackChannel,
    /// The resource endpoint serves requests without a client certificate; the token endpoint
    /// still demands one (brief §7, §10.16).
    ResourceWithoutClientCertificate,
    /// The back channel accepts a client certificate from any CA, expired or not yet valid
    /// (brief §7, §10.16).
    ClientCertificateAnyCa,
    /// Both channels' certificates expire in 20 days, below the coalition's warning threshold
    /// (brief §7).
    CertificateExpiringSoon,
    /// The AuthnRequest is signed with `rsa-sha1` and `sha1` digests, which eID SAML 4.4 no
    /// longer allows (§7.3 and §9: RSA-SHA256 or stronger). The mock TVS refuses it.
    AuthnRequestSha1,
    /// The AuthnRequest names its assertion consumer service by URL
    /// (`AssertionConsumerServiceURL`) instead of by index, which eID SAML 4.4 §7.3 forbids.
    /// The mock TVS refuses it.
    AuthnRequestAcsUrl,
    /// The AuthnRequest's Issuer is the vendor's LC entityID instead of the DV's registered one
    /// (eID SAML 4.4 §7.3). The mock TVS does not know that entity and refuses.
    AuthnRequestWrongIssuer,
    /// The AuthnRequest leaves out Destination (eID SAML 4.4 §7.3: it must match the TVS's
    /// metadata). The mock TVS refuses it.
    AuthnRequestNoDestination,
    /// The AuthnRequest asks for the level with `Comparison="exact"` instead of `minimum`
    /// (eID SAML 4.4 §7.3; SAML core §3.3.2.2.1): a person with a higher means may be turned
    /// away.
    AuthnRequestComparisonExact,
    /// The AuthnRequest asks for midden, below the row's minimum (brief §8): the TVS may log the
    /// person in at a level the DVA must then refuse.
    AuthnRequestLoaMidden,
    /// One AuthnRequest, built at the first login, is posted for every login after it: the same
    /// ID and IssueInstant again (eID SAML 4.4 §7.3: an ID unique for 12 months).
    AuthnRequestCached,
    /// The AuthnRequest's IssueInstant is ten minutes old: a clock that runs behind, or a
    /// request prepared long before it is sent (eID SAML 4.4 §7.3: a fresh request).
    AuthnRequestStale,
    /// The ArtifactResolve goes unsigned (eID SAML 4.4 §7.5 and §9). The mock TVS refuses it.
    ArtifactResolveUnsigned,
    /// The ArtifactResolve is sent with another valid back-channel certificate (a sibling
    /// host's, from the right CA) than the DVA's registered one (eID SAML 4.4 §9).
    ArtifactResolveOtherCertificate,
    /// Each artifact is resolved twice (a retrying client sends the ArtifactResolve again after
    /// reading the answer); the first answer is used (eID SAML 4.4 §7.1: an artifact resolves
    /// once).
    ArtifactResolvedTwice,
    /// Only the level the AuthnRequest asked for is accepted: a higher one is refused (brief
    /// §8: a DVA must accept a higher level than requested).
    LoaExactMatch,
    /// The level is compared with `>` instead of `≥`: a login exactly at the row's minimum is
    /// refused (brief §8; eID SAML 4.4 §7.6.3.5).
    LoaMinimumExclusive,
    /// The Assertion's signature is verified only when there is one (eID SAML 4.4 §9).
    SamlAssertionSignatureOptional,
    /// The ArtifactResponse's signature is verified only when there is one (eID SAML 4.4 §9).
    SamlMessageSignatureOptional,
    /// A certificate carried in `KeyInfo` is trusted when its subject matches the TVS's, instead of pinning the metadata key (xml-crypto 2025).
    SamlKeyInfoTrusted,
    /// RSA-SHA1 signatures and SHA-1 digests are accepted (brief §8, §10.18).
    SamlSha1Accepted,
    /// With two `SignedInfo`, the SignatureValue is checked over the first and the Reference read from the last (xml-crypto 2025).
    SamlSignedInfoSplit,
    /// The DigestValue is read from its first child node, so a comment's text is taken (xml-crypto CVE-2025-29775).
    SamlDigestFirstChild,
    /// The Reference to the signed element is searched in the whole document, so a forged one earlier wins (ruby-saml CVE-2024-45409).
    SamlReferenceSearched,
    /// Signatures are verified wherever they are and data read from the first Assertion found: signature wrapping XSW1–XSW8 and duplicate IDs get through (SAML Raider).
    SamlSignatureDetached,
    /// A `ds:Object` inside the Signature is accepted (the schema allows it) and the Assertion's
    /// data are found by searching its descendants, so an unsigned statement there is read
    /// (a signature-wrapping variant).
    SamlDataFromDescendants,
    /// The first Assertion's signature is verified and the last Assertion read (crewjam/saml CVE-2022-41912).
    SamlLastAssertionRead,
    /// A DOCTYPE is parsed and its internal entities expanded (ruby-saml CVE-2025-25291 family).
    SamlDoctypeAccepted,
    /// External entities are fetched and expanded (XXE); implies a DOCTYPE is accepted.
    SamlExternalEntitiesResolved,
    /// The BSN is cut from the decrypted NameID by string search, up to the first markup: a comment, processing instruction or CDATA section changes the person (CVE-2017-11427 family).
    SamlNameIdByStringSearch,
    /// Conditions NotBefore is not checked (eID SAML 4.4).
    SamlNotBeforeUnchecked,
    /// NotOnOrAfter is not checked (brief §8, §10.18).
    SamlExpiryUnchecked,
    /// InResponseTo is not compared with the AuthnRequest (brief §8, §10.18).
    SamlInResponseToUnchecked,
    /// InResponseTo is compared only when present: unsolicited responses log in (brief §8).
    SamlUnsolicitedAccepted,
    /// SubjectConfirmationData Recipient is not checked (brief §8).
    SamlRecipientUnchecked,
    /// The Audience is checked only when there is an AudienceRestriction (brief §8, §10.18).
    SamlAudienceOptional,
    /// The Response's Destination is not checked (SAML bindings §3.6.5.2).
    SamlDestinationUnchecked,
    /// The Issuers are not compared with the TVS's entityID (eID SAML 4.4).
    SamlIssuerUnchecked,
    /// The Status is not read: a Response with an Assertion logs in whatever it says (eID SAML 4.4 §7.8).
    SamlStatusUnchecked,
    /// Resolved logins are cached by artifact: the same SAMLart delivered again logs in again without asking the TVS (brief §8, §10.18).
    ArtifactReplayAccepted,
    /// The artifact's SourceID is not checked before resolving it (SAML bindings §3.6.4).
    ArtifactSourceUnchecked,
    /// RSA PKCS#1 v1.5 key transport is accepted in the EncryptedID (ST-SAML; Bleichenbacher).
    SamlRsa15Accepted,
    /// Any EncryptedKey is used, whatever its Recipient, or none (brief §8).
    SamlKeyRecipientUnchecked,
    /// A failed decryption is reported with its reason in error_description, so bad padding and bad content answer differently: a padding oracle.
    SamlDecryptionErrorDetailed,
    /// A missing EncryptionMethod is taken as AES-256-CBC (ST-SAML).
    SamlEncryptionMethodAssumed,
    /// An anti-DVA, for an invariant rather than a defect: every authorization request is
    /// redirected with a non-RFC error (an error page where there is no usable redirect_uri),
    /// every token request is refused with `invalid_grant`, every resource request with a
    /// well-formed 401. Such a DVA must earn no pass anywhere.
    RefuseEverything,
    /// An anti-DVA: authorization works, but every token request is refused with a well-formed
    /// `invalid_grant`. No check of a token, refresh or resource step may pass.
    RefuseTokens,
    /// An anti-DVA: authorization and tokens work, but every resource request is refused with a
    /// well-formed 401. No check of a resource step may pass.
    RefuseResources,
    /// An anti-DVA: no validation at all. Any client_id, redirect_uri, scope, response_type,
    /// code, token or grant type is accepted, no client certificate is required, every login
    /// (faulty, cancelled, or for a person without a record) and every consent answer leads to
    /// a code. Such a DVA must pass no negative scenario. It implies every quirk that drops a
    /// check; beyond those it has two behaviours of its own, which no scenario exercises alone:
    /// every login, even one it cannot read, is the default test person's, and a code it never
    /// issued is exchanged.
    AcceptEverything,
}

/// What [`Quirk::RefuseEverything`] implies besides refusing every authorization request.
const REFUSING: &[Quirk] = &[Quirk::RefuseTokens, Quirk::RefuseResources];

/// What [`Quirk::AcceptEverything`] implies: every quirk that drops a check.
const ACCEPTING: &[Quirk] = &[
    Quirk::CodeReplayAccepted,
    Quirk::ClientCertNotRequired,
    Quirk::SamlSignatureUnchecked,
    Quirk::SamlAudienceUnchecked,
    Quirk::LoaUnchecked,
    Quirk::ClientIdUnchecked,
    Quirk::RedirectUriUnchecked,
    Quirk::ScopeUnchecked,
    Quirk::MedmijHeadersNotRequired,
    Quirk::RedirectUriNotCompared,
    Quirk::LegacyTokenRequestAccepted,
    Quirk::CodeNotBoundToClient,
    Quirk::ReplayKeepsTokens,
    Quirk::RefreshNotRotated,
    Quirk::WrongGrantTypeAccepted,
    Quirk::ScopeNotEnforcedAtResource,
    Quirk::AcceptHeaderIgnored,
    Quirk::ClientCertNameUnchecked,
    Quirk::CodeExpiryUnchecked,
    Quirk::TokenExpiryUnchecked,
    Quirk::ConsentIgnored,
    Quirk::AvailabilityUnchecked,
    Quirk::StateNotRequired,
    Quirk::ResponseTypeUnchecked,
    Quirk::BearerUnchecked,
    Quirk::ClientCertificateAnyCa,
    Quirk::ResourceWithoutClientCertificate,
    Quirk::ArtifactSourceUnchecked,
];

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
        Quirk::ClientIdUnchecked,
        Quirk::RedirectUriUnchecked,
        Quirk::RedirectsWhereItMustNot,
        Quirk::ScopeUnchecked,
        Quirk::MedmijHeadersNotRequired,
        Quirk::StateFixed,
        Quirk::RedirectUriNotCompared,
        Quirk::RedirectUriDecodedTwice,
        Quirk::LegacyTokenRequestAccepted,
        Quirk::CodeNotBoundToClient,
        Quirk::ReplayKeepsTokens,
        Quirk::RefreshNotRotated,
        Quirk::WrongGrantTypeAccepted,
        Quirk::ScopeNotEnforcedAtResource,
        Quirk::AcceptHeaderIgnored,
        Quirk::PatientParamRequired,
        Quirk::BsnInSelfLink,
        Quirk::NoBearerChallenge,
        Quirk::SlowTokenEndpoint,
        Quirk::ScopeNaamIdOnly,
        Quirk::ScopeProviderNameOnly,
        Quirk::ClientCertNameUnchecked,
        Quirk::TokenResponseCacheable,
        Quirk::SlowResourceEndpoint,
        Quirk::FhirBaseDoubled,
        Quirk::CodeExpiryUnchecked,
        Quirk::TokenExpiryUnchecked,
        Quirk::SoLinesLeaked,
        Quirk::SoEntriesLeaked,
        Quirk::WorkNotesLeaked,
        Quirk::ThirdPartyLeaked,
        Quirk::NoLabWindow,
        Quirk::EpBeforeStartLeaked,
        Quirk::EndedMedicationCurrent,
        Quirk::InactiveAllergyDropped,
        Quirk::FinishedEpisodesDropped,
        Quirk::GeneralPractitionerNotIncluded,
        Quirk::BrokenReferences,
        Quirk::TokenSlow1In50,
        Quirk::ResourceUnavailable1In20,
        Quirk::CodingsWithoutSystem,
        Quirk::NoPaging,
        Quirk::BsnInPatient,
        Quirk::DutchDates,
        Quirk::StatusMissing,
        Quirk::TokenScopeMissing,
        Quirk::CancelDeadEnd,
        Quirk::ConsentIgnored,
        Quirk::AvailabilityUnchecked,
        Quirk::ErrorDescriptionMissing,
        Quirk::StateNotRequired,
        Quirk::ResponseTypeUnchecked,
        Quirk::BearerUnchecked,
        Quirk::Tls13Only,
        Quirk::LegacyTlsAccepted,
        Quirk::WeakSuiteAccepted,
        Quirk::WildcardFrontCertificate,
        Quirk::PublicCertificateOnBackChannel,
        Quirk::ResourceWithoutClientCertificate,
        Quirk::ClientCertificateAnyCa,
        Quirk::CertificateExpiringSoon,
        Quirk::AuthnRequestSha1,
        Quirk::AuthnRequestAcsUrl,
        Quirk::AuthnRequestWrongIssuer,
        Quirk::AuthnRequestNoDestination,
        Quirk::AuthnRequestComparisonExact,
        Quirk::AuthnRequestLoaMidden,
        Quirk::AuthnRequestCached,
        Quirk::AuthnRequestStale,
        Quirk::ArtifactResolveUnsigned,
        Quirk::ArtifactResolveOtherCertificate,
        Quirk::ArtifactResolvedTwice,
        Quirk::LoaExactMatch,
        Quirk::LoaMinimumExclusive,
        Quirk::SamlAssertionSignatureOptional,
        Quirk::SamlMessageSignatureOptional,
        Quirk::SamlKeyInfoTrusted,
        Quirk::SamlSha1Accepted,
        Quirk::SamlSignedInfoSplit,
        Quirk::SamlDigestFirstChild,
        Quirk::SamlReferenceSearched,
        Quirk::SamlSignatureDetached,
        Quirk::SamlLastAssertionRead,
        Quirk::SamlDataFromDescendants,
        Quirk::SamlDoctypeAccepted,
        Quirk::SamlExternalEntitiesResolved,
        Quirk::SamlNameIdByStringSearch,
        Quirk::SamlNotBeforeUnchecked,
        Quirk::SamlExpiryUnchecked,
        Quirk::SamlInResponseToUnchecked,
        Quirk::SamlUnsolicitedAccepted,
        Quirk::SamlRecipientUnchecked,
        Quirk::SamlAudienceOptional,
        Quirk::SamlDestinationUnchecked,
        Quirk::SamlIssuerUnchecked,
        Quirk::SamlStatusUnchecked,
        Quirk::ArtifactReplayAccepted,
        Quirk::ArtifactSourceUnchecked,
        Quirk::SamlRsa15Accepted,
        Quirk::SamlKeyRecipientUnchecked,
        Quirk::SamlDecryptionErrorDetailed,
        Quirk::SamlEncryptionMethodAssumed,
        Quirk::RefuseEverything,
        Quirk::RefuseTokens,
        Quirk::RefuseResources,
        Quirk::AcceptEverything,
    ];

    /// The anti-DVAs: not defects to be caught by one check, but invariants over all of
    /// them (tests/it/invariants.rs). The mutation test leaves them out.
    pub const ANTI: &'static [Quirk] = &[
        Quirk::RefuseEverything,
        Quirk::RefuseTokens,
        Quirk::RefuseResources,
        Quirk::AcceptEverything,
    ];

    /// The availability quirks: a share of slow or failed answers, which no single run
    /// proves; `koppeltest soak` judges them (tests/it/soak.rs). The mutation test leaves them
    /// out.
    pub const AVAILABILITY: &'static [Quirk] =
        &[Quirk::TokenSlow1In50, Quirk::ResourceUnavailable1In20];

    /// The catalogue requirements this quirk violates. The mutation test proves each claim: a
    /// check crediting the requirement fails against the quirk ("kills" it). A requirement
    /// counts as tested only when some quirk claims it.
    pub fn violates(self) -> &'static [&'static str] {
        use Quirk::*;
        match self {
            CodeReplayAccepted => &["core.tknint.203", "core.tknint.204"],
            StateNotEchoed | StateFixed => &[
                "rfc6749#4.1.2",
                "rfc6749#10.12",
                "medmij:defect.state-not-echoed",
            ],
            ClientCertNotRequired => &["rfc8705#2", "medmij:tls.back-channel-mutual"],
            NumericErrorCodes => &["rfc6749#4.1.2.1", "rfc6749#5.2"],
            MetaProfileMissing => &["nictiz:qualification.gp-49"],
            SamlSignatureUnchecked => &["eid-saml-4.4#9"],
            SamlAudienceUnchecked => &["eid-saml-4.4#7.6"],
            LoaUnchecked => &["eid-saml-4.4#7.6.3.5"],
            ClientIdUnchecked => &["medmij:authorization.client-id-on-ocl"],
            RedirectUriUnchecked => &["medmij:authorization.redirect-uri"],
            RedirectsWhereItMustNot => &["medmij:technische-storing"],
            ScopeUnchecked => &["medmij:scope.unknown-refused"],
            MedmijHeadersNotRequired => &["core.authint.208"],
            RedirectUriNotCompared => &["core.tknint.205"],
            RedirectUriDecodedTwice => &[
                "core.tknint.205",
                "medmij:defect.double-encoded-redirect-uri",
            ],
            LegacyTokenRequestAccepted => &[
                "medmij:token.client-id-required",
                "medmij:defect.legacy-token-request",
            ],
            CodeNotBoundToClient => &["rfc6749#4.1.3"],
            ReplayKeepsTokens => &["rfc6749#4.1.2.revoke"],
            RefreshNotRotated => &["medmij:refresh-rotation", "rfc6749#6"],
            WrongGrantTypeAccepted => &["medmij:defect.refresh-code"],
            ScopeNotEnforcedAtResource => &["rfc6750#3.1"],
            AcceptHeaderIgnored => &["medmij:resource.accept"],
            PatientParamRequired => &["medmij:resource.patient-from-token"],
            BsnInSelfLink => &["medmij:resource.no-bsn"],
            NoBearerChallenge => &["rfc6750#3"],
            SlowTokenEndpoint => &["core.tknint.206", "medmij:response-time"],
            SlowResourceEndpoint => &["core.rscint.202", "medmij:response-time"],
            ScopeNaamIdOnly => &[
                "medmij:scope.release-1.0",
                "medmij:scope.release-2.2",
                "medmij:verzamelen.authorization",
            ],
            ScopeProviderNameOnly => &["medmij:scope.release-1.0", "medmij:scope.release-1.x"],
            ClientCertNameUnchecked => &["rfc8705#2"],
            TokenResponseCacheable => &["rfc6749#5.1"],
            FhirBaseDoubled => &["medmij:resource.fhir-base"],
            CodeExpiryUnchecked => &["medmij:token.code-expiry"],
            TokenExpiryUnchecked => &["medmij:resource.expired-token"],
            SoLinesLeaked
            | SoEntriesLeaked
            | WorkNotesLeaked
            | ThirdPartyLeaked
            | NoLabWindow
            | EpBeforeStartLeaked
            | EndedMedicationCurrent => &["nhg:online-inzage.exclusions"],
            InactiveAllergyDropped | FinishedEpisodesDropped | GeneralPractitionerNotIncluded => {
                &["nhg:online-inzage.dataset"]
            }
            BrokenReferences => &["medmij:gp49.references"],
            TokenSlow1In50 => &["core.tknint.206"],
            ResourceUnavailable1In20 => &["core.rscint.202"],
            CodingsWithoutSystem => &["nictiz:qualification.codings"],
            NoPaging => &["medmij:gp49.paging"],
            BsnInPatient => &["nictiz:qualification.no-bsn"],
            DutchDates | StatusMissing => &["nictiz:qualification.profiles"],
            TokenScopeMissing => &["medmij:token.response"],
            CancelDeadEnd => &["eid-saml-4.4#7.8"],
            ConsentIgnored => &["medmij:toestemmingsverklaring"],
            AvailabilityUnchecked => &["medmij:beschikbaarheidstoets"],
            ErrorDescriptionMissing => &["medmij:duiding-van-fouten"],
            StateNotRequired => &["medmij:authorization.state-required"],
            ResponseTypeUnchecked => &["rfc6749#4.1.2.1"],
            BearerUnchecked => &["rfc6750#3", "rfc6750#3.1"],
            Tls13Only => &["medmij:tls.version-1.2"],
            LegacyTlsAccepted => &[
                "medmij:tls.no-legacy-versions",
                "medmij:tls.version-1.3",
                "ncsc:tls.configuration",
            ],
            WeakSuiteAccepted => &["ncsc:tls.configuration"],
            WildcardFrontCertificate => &["medmij:tls.front-certificate"],
            PublicCertificateOnBackChannel => &["medmij:tls.back-certificate"],
            ResourceWithoutClientCertificate => &["medmij:tls.back-channel-mutual"],
            ClientCertificateAnyCa => &["medmij:tls.client-certificate-trust"],
            CertificateExpiringSoon => &["medmij:tls.certificate-expiry"],
            AuthnRequestSha1 => &["eid-saml-4.4#authn-request.signed"],
            AuthnRequestAcsUrl => &["eid-saml-4.4#authn-request.acs-index"],
            AuthnRequestWrongIssuer => &["eid-saml-4.4#authn-request.issuer"],
            AuthnRequestNoDestination => &["eid-saml-4.4#authn-request.destination"],
            AuthnRequestComparisonExact | AuthnRequestLoaMidden => {
                &["eid-saml-4.4#authn-request.requested-loa"]
            }
            AuthnRequestCached | AuthnRequestStale => &["eid-saml-4.4#authn-request.fresh"],
            ArtifactResolveUnsigned => &["eid-saml-4.4#artifact-resolve.signed"],
            ArtifactResolveOtherCertificate => &["eid-saml-4.4#artifact-resolve.mutual-tls"],
            ArtifactResolvedTwice => &["eid-saml-4.4#artifact.resolved-once"],
            LoaExactMatch | LoaMinimumExclusive => &["eid-saml-4.4#7.6.3.5.at-or-above"],
            SamlAssertionSignatureOptional => &["eid-saml-4.4#9.assertion-signed"],
            SamlMessageSignatureOptional => &["eid-saml-4.4#9.message-signed"],
            SamlKeyInfoTrusted => &["eid-saml-4.4#9.metadata-key"],
            SamlSha1Accepted => &["eid-saml-4.4#9.algorithms"],
            SamlSignedInfoSplit => &["attack:two-signed-info"],
            SamlDigestFirstChild => &["attack:cve-2025-29775"],
            SamlReferenceSearched => &["attack:cve-2024-45409"],
            SamlSignatureDetached => &[
                "attack:xsw1",
                "attack:xsw2",
                "attack:xsw3",
                "attack:xsw4",
                "attack:xsw5",
                "attack:xsw6",
                "attack:xsw7",
                "attack:xsw8",
                "attack:duplicate-ids",
            ],
            SamlLastAssertionRead => &["attack:cve-2022-41912"],
            SamlDataFromDescendants => &["attack:signature-object"],
            SamlDoctypeAccepted => &["attack:doctype", "attack:entity-expansion"],
            SamlExternalEntitiesResolved => &["attack:xxe"],
            SamlNameIdByStringSearch => &["attack:cve-2017-11427"],
            SamlNotBeforeUnchecked => &["eid-saml-4.4#7.6.not-before"],
            SamlExpiryUnchecked => &[
                "eid-saml-4.4#7.6.not-on-or-after",
                "eid-saml-4.4#artifact.lifetime",
            ],
            SamlInResponseToUnchecked => &["eid-saml-4.4#7.6.in-response-to"],
            SamlUnsolicitedAccepted => &["eid-saml-4.4#7.6.unsolicited"],
            SamlRecipientUnchecked => &["eid-saml-4.4#7.6.recipient"],
            SamlAudienceOptional => &["eid-saml-4.4#7.6.audience-missing"],
            SamlDestinationUnchecked => &["eid-saml-4.4#7.6.destination"],
            SamlIssuerUnchecked => &["eid-saml-4.4#7.6.issuer"],
            SamlStatusUnchecked => &["eid-saml-4.4#7.8.status"],
            ArtifactReplayAccepted => &["eid-saml-4.4#artifact.single-use"],
            ArtifactSourceUnchecked => &["eid-saml-4.4#artifact.source-id"],
            SamlRsa15Accepted => &["st-saml#encryption.key-transport"],
            SamlKeyRecipientUnchecked => &["st-saml#encryption.recipient"],
            SamlDecryptionErrorDetailed => &["attack:padding-oracle"],
            SamlEncryptionMethodAssumed => &["st-saml#encryption.method"],
            // The anti-DVAs break everything; they prove invariants, not single rules.
            RefuseEverything | RefuseTokens | RefuseResources | AcceptEverything => &[],
        }
    }

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
            Quirk::ClientIdUnchecked => "an unknown or missing client_id is accepted",
            Quirk::RedirectUriUnchecked => {
                "a foreign, http, query- or fragment-carrying redirect_uri is accepted"
            }
            Quirk::RedirectsWhereItMustNot => "redirects with an error where an error page is due",
            Quirk::ScopeUnchecked => "any scope is accepted",
            Quirk::MedmijHeadersNotRequired => {
                "MedMij-Request-ID and X-Correlation-ID are not required"
            }
            Quirk::StateFixed => "the redirect with the code carries a fixed state",
            Quirk::RedirectUriNotCompared => "the token endpoint does not compare redirect_uri",
            Quirk::RedirectUriDecodedTwice => {
                "the token endpoint accepts a double-encoded redirect_uri"
            }
            Quirk::LegacyTokenRequestAccepted => {
                "token parameters in the query string and an empty client_id are accepted"
            }
            Quirk::CodeNotBoundToClient => "a code is exchanged for any client",
            Quirk::ReplayKeepsTokens => "tokens issued for a replayed code stay valid",
            Quirk::RefreshNotRotated => "refresh tokens are not rotated",
            Quirk::WrongGrantTypeAccepted => "unknown grant types are treated as refresh_token",
            Quirk::ScopeNotEnforcedAtResource => {
                "the resource endpoint ignores the token's services"
            }
            Quirk::AcceptHeaderIgnored => "unsupported Accept headers are answered anyway",
            Quirk::PatientParamRequired => "resource searches need patient=",
            Quirk::BsnInSelfLink => "the self link names the patient by BSN",
            Quirk::NoBearerChallenge => "invalid tokens get 401 without WWW-Authenticate",
            Quirk::SlowTokenEndpoint => "the token endpoint answers after 4 s",
            Quirk::ScopeNaamIdOnly => "only naam~id scopes are understood",
            Quirk::ScopeProviderNameOnly => "only provider-name scopes are understood",
            Quirk::ClientCertNameUnchecked => {
                "the client certificate's name is not compared with client_id"
            }
            Quirk::TokenResponseCacheable => "the token response lacks Cache-Control: no-store",
            Quirk::SlowResourceEndpoint => "the resource endpoint answers after 4 s",
            Quirk::FhirBaseDoubled => "the FHIR API answers only under /fhir/fhir",
            Quirk::CodeExpiryUnchecked => "expired codes are still exchanged",
            Quirk::TokenExpiryUnchecked => "expired access tokens are still served",
            Quirk::SoLinesLeaked => "S and O journal lines are served",
            Quirk::SoEntriesLeaked => {
                "S and O sections are removed but their journal entries are served"
            }
            Quirk::WorkNotesLeaked => "the GP's personal work notes are served",
            Quirk::ThirdPartyLeaked => "third-party information is served",
            Quirk::NoLabWindow => "lab results older than 14 months are served",
            Quirk::EpBeforeStartLeaked => "E/P lines from before online access started are served",
            Quirk::EndedMedicationCurrent => "ended medication agreements are served as current",
            Quirk::InactiveAllergyDropped => "inactive hypersensitivities are left out",
            Quirk::FinishedEpisodesDropped => "finished episodes are left out",
            Quirk::GeneralPractitionerNotIncluded => "the general practitioner is not included",
            Quirk::BrokenReferences => "references point at resources that do not exist",
            Quirk::TokenSlow1In50 => "one token answer in 50 comes after the row's slow_answer_ms",
            Quirk::ResourceUnavailable1In20 => "one resource answer in 20 is 503",
            Quirk::CodingsWithoutSystem => "codings lack their system",
            Quirk::NoPaging => "a large result comes in one Bundle, without paging",
            Quirk::BsnInPatient => "the Patient resource carries the BSN unmasked",
            Quirk::DutchDates => "dates are written dd-mm-yyyy instead of as FHIR dates",
            Quirk::StatusMissing => "resources lack their required status",
            Quirk::TokenScopeMissing => "the token response does not state the granted scope",
            Quirk::CancelDeadEnd => "a cancelled login ends on a page, not with access_denied",
            Quirk::ConsentIgnored => "a refused consent still yields a code",
            Quirk::AvailabilityUnchecked => "a person without a record gets a code",
            Quirk::ErrorDescriptionMissing => "error redirects carry no error_description",
            Quirk::StateNotRequired => "authorization requests without state are accepted",
            Quirk::ResponseTypeUnchecked => "a missing or unsupported response_type is accepted",
            Quirk::BearerUnchecked => "requests without a valid token are served",
            Quirk::Tls13Only => "every listener speaks TLS 1.3 only",
            Quirk::LegacyTlsAccepted => "TLS 1.0 and 1.1 are accepted, TLS 1.3 is not (OpenSSL)",
            Quirk::WeakSuiteAccepted => "a static-RSA CBC-SHA suite is accepted (OpenSSL)",
            Quirk::WildcardFrontCertificate => "the front channel has a wildcard certificate",
            Quirk::PublicCertificateOnBackChannel => "the back channel has a public OV certificate",
            Quirk::ResourceWithoutClientCertificate => {
                "the resource endpoint serves clients without a certificate"
            }
            Quirk::ClientCertificateAnyCa => {
                "the back channel accepts client certificates from any CA, even expired"
            }
            Quirk::CertificateExpiringSoon => "the certificates expire in 20 days",
            Quirk::AuthnRequestSha1 => "the AuthnRequest is signed with rsa-sha1",
            Quirk::AuthnRequestAcsUrl => "the AuthnRequest carries an ACS URL instead of the index",
            Quirk::AuthnRequestWrongIssuer => {
                "the AuthnRequest's Issuer is not the registered entityID"
            }
            Quirk::AuthnRequestNoDestination => "the AuthnRequest has no Destination",
            Quirk::AuthnRequestComparisonExact => {
                "the AuthnRequest asks for the level with Comparison=exact"
            }
            Quirk::AuthnRequestLoaMidden => "the AuthnRequest asks for midden",
            Quirk::AuthnRequestCached => "one AuthnRequest (same ID) is posted for every login",
            Quirk::AuthnRequestStale => "the AuthnRequest's IssueInstant is ten minutes old",
            Quirk::ArtifactResolveUnsigned => "the ArtifactResolve is unsigned",
            Quirk::ArtifactResolveOtherCertificate => {
                "the ArtifactResolve is sent with another host's certificate"
            }
            Quirk::ArtifactResolvedTwice => "each artifact is resolved twice",
            Quirk::LoaExactMatch => "a level higher than requested is refused",
            Quirk::LoaMinimumExclusive => "a login exactly at the minimum level is refused",
            Quirk::RefuseEverything => "every request is refused (an invariant: no pass)",
            Quirk::RefuseTokens => "every token request is refused (an invariant)",
            Quirk::RefuseResources => "every resource request is refused (an invariant)",
            Quirk::SamlAssertionSignatureOptional => "an unsigned Assertion is accepted",
            Quirk::SamlMessageSignatureOptional => "an unsigned ArtifactResponse is accepted",
            Quirk::SamlKeyInfoTrusted => "the key in KeyInfo is trusted by its subject name",
            Quirk::SamlSha1Accepted => "SHA-1 signatures are accepted",
            Quirk::SamlSignedInfoSplit => "two SignedInfo elements: one verified, the other used",
            Quirk::SamlDigestFirstChild => "a DigestValue hidden in a comment is used",
            Quirk::SamlReferenceSearched => "a forged Reference earlier in the document is used",
            Quirk::SamlSignatureDetached => {
                "signature verification is detached from the data read (XSW)"
            }
            Quirk::SamlDataFromDescendants => {
                "data read from anywhere in the Assertion, a ds:Object in its Signature included"
            }
            Quirk::SamlLastAssertionRead => "the first Assertion is verified, the last one read",
            Quirk::SamlDoctypeAccepted => "a DOCTYPE and its entities are processed",
            Quirk::SamlExternalEntitiesResolved => "external entities are fetched (XXE)",
            Quirk::SamlNameIdByStringSearch => {
                "the NameID is read by string search, not as whole text"
            }
            Quirk::SamlNotBeforeUnchecked => "an Assertion that is not yet valid is accepted",
            Quirk::SamlExpiryUnchecked => "an expired Assertion is accepted",
            Quirk::SamlInResponseToUnchecked => "InResponseTo is not compared",
            Quirk::SamlUnsolicitedAccepted => "an unsolicited response is accepted",
            Quirk::SamlRecipientUnchecked => "the Recipient is not checked",
            Quirk::SamlAudienceOptional => "an Assertion without Audience is accepted",
            Quirk::SamlDestinationUnchecked => "the Response's Destination is not checked",
            Quirk::SamlIssuerUnchecked => "another Issuer is accepted",
            Quirk::SamlStatusUnchecked => "a non-success status with an Assertion logs in",
            Quirk::ArtifactReplayAccepted => "a replayed artifact logs in again",
            Quirk::ArtifactSourceUnchecked => "an artifact from an unknown source is resolved",
            Quirk::SamlRsa15Accepted => "rsa-1_5 key transport is accepted",
            Quirk::SamlKeyRecipientUnchecked => "the EncryptedKey's Recipient is not checked",
            Quirk::SamlDecryptionErrorDetailed => "decryption failures are told apart to the PGO",
            Quirk::SamlEncryptionMethodAssumed => "a missing EncryptionMethod is assumed",
            Quirk::AcceptEverything => {
                "nothing is validated (an invariant: no negative scenario passes)"
            }
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

    /// Whether the DVA deviates as `q` says; [`Quirk::AcceptEverything`] implies every quirk
    /// that drops a check.
    pub fn has(&self, q: Quirk) -> bool {
        self.0.contains(&q)
            || (ACCEPTING.contains(&q) && self.0.contains(&Quirk::AcceptEverything))
            || (REFUSING.contains(&q) && self.0.contains(&Quirk::RefuseEverything))
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|q| q.name()).collect()
    }
}

/// Which answers the availability quirks spoil: answer `n` (counted per row over the whole
/// run or soak, across servers) is spoiled when a SplitMix64 hash of `seed` and `n` falls in
/// the quirk's share. The same seed spoils the same answer numbers every time.
#[derive(Debug, Default)]
pub struct Availability {
    seed: u64,
    token_answers: std::sync::atomic::AtomicU64,
    resource_answers: std::sync::atomic::AtomicU64,
}

impl Availability {
    pub fn new(seed: u64) -> Availability {
        Availability {
            seed,
            ..Availability::default()
        }
    }

    /// Counts a token answer; whether it is one of the 1 in `share` to spoil.
    pub fn next_token_spoiled(&self, share: u64) -> bool {
        let n = self
            .token_answers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        spoiled(self.seed, n, share)
    }

    /// Counts a resource answer; whether it is one of the 1 in `share` to spoil.
    pub fn next_resource_spoiled(&self, share: u64) -> bool {
        let n = self
            .resource_answers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        spoiled(self.seed.rotate_left(32) ^ 0x5EED, n, share)
    }
}

fn spoiled(seed: u64, n: u64, share: u64) -> bool {
    // SplitMix64 (Steele, Lea, Flood 2014) of the seed and the answer number.
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % share.max(1) == 0
}

/// How late the slow-endpoint quirks answer: far above any realistic test budget, far below
/// MedMij's 10 s and 60 s, so only a deliberately short budget catches them.
pub const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(4);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `Quirk::ALL` lists every variant: the mutation test, the coverage and the anti-DVA
    /// invariants iterate it, so a quirk left out would escape all three.
    #[test]
    fn all_lists_every_quirk() {
        let schema = serde_json::to_value(schemars::schema_for!(Quirk)).unwrap();
        let variants = schema["enum"]
            .as_array()
            .or_else(|| schema["oneOf"].as_array())
            .expect("the schema lists the variants");
        let mut declared: Vec<String> = variants
            .iter()
            .map(|v| {
                v.as_str()
                    .or_else(|| v["const"].as_str())
                    .or_else(|| v["enum"][0].as_str())
                    .expect("a variant name")
                    .to_string()
            })
            .collect();
        let mut listed: Vec<String> = Quirk::ALL.iter().map(|q| q.name()).collect();
        declared.sort();
        listed.sort();
        assert_eq!(declared, listed);
    }
}
