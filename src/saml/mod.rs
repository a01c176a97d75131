//! SAML 2.0 as the Dutch eID "Koppelvlakspecificatie eID SAML 4.4" uses it between a DV (the
//! DVA) and the TVS: AuthnRequest over HTTP-POST, artifact binding back, ArtifactResolve and
//! ArtifactResponse over SOAP with mutual TLS, an Assertion whose BSN travels as an
//! `EncryptedID`.
//!
//! The builders here make conformant messages; deliberate faults are applied by the mock TVS
//! (`tvs::TvsFault`) and deliberate laxness by the simulated DVA's quirks, both through
//! [`AssertionPolicy`]. This module holds no state and does no I/O.

pub mod c14n;
pub mod dsig;
pub mod xmlenc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::{Document, Node};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::pki::SamlKey;

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

pub const ATTR_SERVICE_UUID: &str = "urn:nl-eid-gdi:1.0:ServiceUUID";
pub const ATTR_ACTING_SUBJECT: &str = "urn:nl-eid-gdi:1.0:ActingSubjectID";
pub const NAME_QUALIFIER_LEGACY_BSN: &str = "urn:nl-eid-gdi:1.0:id:legacy-BSN";
const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const BINDING_ARTIFACT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact";
const BINDING_SOAP: &str = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP";
pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_AUTHN_FAILED: &str = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed";
pub const STATUS_NO_AUTHN_CONTEXT: &str = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext";
/// The exact StatusMessage of a cancelled login (eID SAML 4.4 §7.8).
pub const CANCELLED_MESSAGE: &str = "Authentication cancelled";

#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("parse XML: {0}")]
    Xml(String),
    #[error("invalid message: {0}")]
    Invalid(String),
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("assertion refused: {0}")]
    Refused(String),
}

/// Levels of assurance, as the TVS names them, in increasing order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Loa {
    /// DigiD Basis.
    Basic,
    /// DigiD Midden (eIDAS low).
    Low,
    /// DigiD Substantieel: the minimum for GP data.
    Substantial,
    /// DigiD Hoog.
    High,
}

impl Loa {
    pub fn uri(self) -> &'static str {
        match self {
            Loa::Basic => "http://eID.logius.nl/LoA/basic",
            Loa::Low => "http://eidas.europa.eu/LoA/low",
            Loa::Substantial => "http://eidas.europa.eu/LoA/substantial",
            Loa::High => "http://eidas.europa.eu/LoA/high",
        }
    }

    pub fn from_uri(uri: &str) -> Option<Loa> {
        [Loa::Basic, Loa::Low, Loa::Substantial, Loa::High]
            .into_iter()
            .find(|l| l.uri() == uri)
    }
}

pub fn instant(t: OffsetDateTime) -> String {
    // Whole seconds in UTC, as SAML's xs:dateTime values usually are.
    let t = t
        .replace_nanosecond(0)
        .unwrap_or(t)
        .to_offset(time::UtcOffset::UTC);
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    Document::parse(xml).map_err(|e| SamlError::Xml(e.to_string()))
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == local
    })
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| {
        c.is_element() && c.tag_name().namespace() == Some(ns) && c.tag_name().name() == local
    })
}

fn text_of(node: Option<Node<'_, '_>>) -> String {
    node.and_then(|n| n.text()).unwrap_or("").trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// What one party publishes about itself in SAML metadata (the parts koppeltest uses).
#[derive(Debug, Clone, Default)]
pub struct EntityMetadata {
    pub entity_id: String,
    pub signing_certs: Vec<Vec<u8>>,
    pub encryption_certs: Vec<Vec<u8>>,
    /// IdP: SingleSignOnService (HTTP-POST).
    pub sso_url: Option<String>,
    /// IdP: ArtifactResolutionService (SOAP).
    pub artifact_resolution_url: Option<String>,
    /// SP: AssertionConsumerService by index.
    pub acs: Vec<(u16, String)>,
}

/// The TVS's IdP metadata.
pub fn idp_metadata(entity_id: &str, signing: &SamlKey, sso_url: &str, ars_url: &str) -> String {
    format!(
        "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{e}\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"{NS_SAMLP}\" WantAuthnRequestsSigned=\"true\">\
         <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:ArtifactResolutionService Binding=\"{BINDING_SOAP}\" Location=\"{ars}\" index=\"0\"></md:ArtifactResolutionService>\
         <md:SingleSignOnService Binding=\"{BINDING_POST}\" Location=\"{sso}\"></md:SingleSignOnService>\
         </md:IDPSSODescriptor></md:EntityDescriptor>",
        e = escape(entity_id),
        cert = signing.cert_b64(),
        ars = escape(ars_url),
        sso = escape(sso_url),
    )
}

/// A DV's SP metadata (one assertion consumer service, index 0).
pub fn sp_metadata(
    entity_id: &str,
    signing: &SamlKey,
    encryption: &SamlKey,
    acs_url: &str,
) -> String {
    format!(
        "<md:EntityDescriptor xmlns:md=\"{NS_MD}\" xmlns:ds=\"{NS_DS}\" entityID=\"{e}\">\
         <md:SPSSODescriptor protocolSupportEnumeration=\"{NS_SAMLP}\" AuthnRequestsSigned=\"true\">\
         <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{s}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:KeyDescriptor use=\"encryption\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:AssertionConsumerService Binding=\"{BINDING_ARTIFACT}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"></md:AssertionConsumerService>\
         </md:SPSSODescriptor></md:EntityDescriptor>",
        e = escape(entity_id),
        s = signing.cert_b64(),
        c = encryption.cert_b64(),
        acs = escape(acs_url),
    )
}

/// Parses IdP or SP metadata.
pub fn parse_metadata(xml: &str) -> Result<EntityMetadata, SamlError> {
    let doc = parse(xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "EntityDescriptor" || root.tag_name().namespace() != Some(NS_MD) {
        return Err(SamlError::Invalid(
            "metadata root is not md:EntityDescriptor".into(),
        ));
    }
    let mut md = EntityMetadata {
        entity_id: root.attribute("entityID").unwrap_or("").to_string(),
        ..Default::default()
    };
    for descriptor in root.children().filter(|c| c.is_element()) {
        for kd in children(descriptor, NS_MD, "KeyDescriptor") {
            let certs: Vec<Vec<u8>> = kd
                .descendants()
                .filter(|n| n.tag_name().name() == "X509Certificate")
                .filter_map(|n| {
                    B64.decode(
                        n.text()
                            .unwrap_or("")
                            .split_whitespace()
                            .collect::<String>(),
                    )
                    .ok()
                })
                .collect();
            match kd.attribute("use") {
                Some("signing") => md.signing_certs.extend(certs),
                Some("encryption") => md.encryption_certs.extend(certs),
                _ => {
                    md.signing_certs.extend(certs.clone());
                    md.encryption_certs.extend(certs);
                }
            }
        }
        if let Some(sso) = children(descriptor, NS_MD, "SingleSignOnService")
            .find(|s| s.attribute("Binding") == Some(BINDING_POST))
        {
            md.sso_url = sso.attribute("Location").map(str::to_string);
        }
        if let Some(ars) = child(descriptor, NS_MD, "ArtifactResolutionService") {
            md.artifact_resolution_url = ars.attribute("Location").map(str::to_string);
        }
        for acs in children(descriptor, NS_MD, "AssertionConsumerService") {
            let index = acs
                .attribute("index")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            md.acs
                .push((index, acs.attribute("Location").unwrap_or("").to_string()));
        }
    }
    if md.entity_id.is_empty() {
        return Err(SamlError::Invalid("metadata has no entityID".into()));
    }
    Ok(md)
}

// ---------------------------------------------------------------------------------------------
// AuthnRequest

/// An AuthnRequest as the DV sends it and the TVS reads it.
#[derive(Debug, Clone)]
pub struct AuthnRequest {
    pub id: String,
    pub issuer: String,
    pub destination: String,
    pub acs_index: u16,
    pub requested_loa: Loa,
}

/// How the RequestedAuthnContext asks for the level of assurance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Comparison {
    /// `Comparison="minimum"`: this level or higher (eID SAML 4.4).
    #[default]
    Minimum,
    /// `Comparison="exact"`: this level only, so a TVS may refuse a higher one.
    Exact,
    /// No RequestedAuthnContext at all.
    Omitted,
}

/// Deviations in how an AuthnRequest is built, for the simulated DVA's quirks; the default is
/// the conformant shape.
#[derive(Debug, Clone, Default)]
pub struct AuthnRequestShape {
    pub algorithm: dsig::SignAlg,
    /// An `AssertionConsumerServiceURL` instead of the index, which eID SAML forbids.
    pub acs_url: Option<String>,
    pub comparison: Comparison,
}

impl AuthnRequest {
    /// The signed XML, base64-encoded for the HTTP-POST binding's `SAMLRequest` field.
    pub fn to_post_binding(&self, key: &SamlKey) -> Result<String, SamlError> {
        self.to_post_binding_with(key, &AuthnRequestShape::default())
    }

    /// [`Self::to_post_binding`] in the given shape. An empty `destination` leaves the
    /// attribute out.
    pub fn to_post_binding_with(
        &self,
        key: &SamlKey,
        shape: &AuthnRequestShape,
    ) -> Result<String, SamlError> {
        let now = instant(OffsetDateTime::now_utc());
        let destination = if self.destination.is_empty() {
            String::new()
        } else {
            format!(" Destination=\"{}\"", escape(&self.destination))
        };
        let acs = match &shape.acs_url {
            Some(url) => format!(
                "AssertionConsumerServiceURL=\"{}\" ProtocolBinding=\"{BINDING_ARTIFACT}\"",
                escape(url)
            ),
            None => format!("AssertionConsumerServiceIndex=\"{}\"", self.acs_index),
        };
        let context = match shape.comparison {
            Comparison::Omitted => String::new(),
            c => format!(
                "<samlp:RequestedAuthnContext Comparison=\"{}\"><saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>\
                 </samlp:RequestedAuthnContext>",
                if c == Comparison::Exact {
                    "exact"
                } else {
                    "minimum"
                },
                self.requested_loa.uri(),
            ),
        };
        let xml = dsig::sign_with(
            |sig| {
                format!(
                    "<samlp:AuthnRequest xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" \
                     IssueInstant=\"{now}\"{destination} {acs} \
                     AttributeConsumingServiceIndex=\"0\"><saml:Issuer>{iss}</saml:Issuer>{sig}{context}</samlp:AuthnRequest>",
                    id = self.id,
                    iss = escape(&self.issuer),
                )
            },
            &self.id,
            key,
            shape.algorithm,
        )?;
        Ok(B64.encode(xml))
    }

    /// Reads a posted `SAMLRequest` and verifies its signature against the issuer's metadata,
    /// looked up with `sp_lookup`.
    pub fn from_post_binding<'m>(
        saml_request: &str,
        sp_lookup: impl Fn(&str) -> Option<&'m EntityMetadata>,
    ) -> Result<(AuthnRequest, &'m EntityMetadata), SamlError> {
        let raw = B64
            .decode(saml_request.split_whitespace().collect::<String>())
            .map_err(|_| SamlError::Invalid("SAMLRequest is not base64".into()))?;
        let xml = String::from_utf8(raw)
            .map_err(|_| SamlError::Invalid("SAMLRequest is not UTF-8".into()))?;
        let doc = parse(&xml)?;
        let root = doc.root_element();
        if root.tag_name().name() != "AuthnRequest" || root.tag_name().namespace() != Some(NS_SAMLP)
        {
            return Err(SamlError::Invalid("not a samlp:AuthnRequest".into()));
        }
        if root.attribute("AssertionConsumerServiceURL").is_some() {
            return Err(SamlError::Invalid(
                "AssertionConsumerServiceURL is forbidden; use the index".into(),
            ));
        }
        let issuer = text_of(child(root, NS_SAML, "Issuer"));
        let sp = sp_lookup(&issuer)
            .ok_or_else(|| SamlError::Refused(format!("unknown issuer {issuer:?}")))?;
        dsig::verify(root, &sp.signing_certs)?;
        let loa = root
            .descendants()
            .find(|n| n.tag_name().name() == "AuthnContextClassRef")
            .and_then(|n| n.text())
            .and_then(Loa::from_uri)
            .unwrap_or(Loa::Substantial);
        Ok((
            AuthnRequest {
                id: root.attribute("ID").unwrap_or("").to_string(),
                issuer,
                destination: root.attribute("Destination").unwrap_or("").to_string(),
                acs_index: root
                    .attribute("AssertionConsumerServiceIndex")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0),
                requested_loa: loa,
            },
            sp,
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Artifacts and SOAP

/// A SAML 2.0 type-0x0004 artifact: type code, endpoint index, SHA-1 of the issuer's entityID
/// (the SourceID, as the binding defines it) and a random message handle.
pub fn new_artifact(issuer_entity: &str) -> String {
    let mut raw = vec![0x00, 0x04, 0x00, 0x00];
    raw.extend_from_slice(
        aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            issuer_entity.as_bytes(),
        )
        .as_ref(),
    );
    raw.extend_from_slice(&crate::ids::random_bytes(20));
    B64.encode(raw)
}

fn soap(body: &str) -> String {
    format!(
        "<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )
}

fn soap_body_element<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, SamlError> {
    let env = doc.root_element();
    child(env, NS_SOAP, "Body")
        .and_then(|b| b.first_element_child())
        .ok_or_else(|| SamlError::Invalid("SOAP envelope without a body element".into()))
}

/// The DV's signed ArtifactResolve, in a SOAP envelope.
pub fn artifact_resolve(
    issuer: &str,
    destination: &str,
    artifact: &str,
    key: &SamlKey,
) -> Result<(String, String), SamlError> {
    artifact_resolve_with(issuer, destination, artifact, Some(key))
}

/// [`artifact_resolve`], unsigned when `key` is `None` (a simulated-DVA quirk).
pub fn artifact_resolve_with(
    issuer: &str,
    destination: &str,
    artifact: &str,
    key: Option<&SamlKey>,
) -> Result<(String, String), SamlError> {
    let id = crate::ids::saml_id();
    let now = instant(OffsetDateTime::now_utc());
    let template = |sig: &str| {
        format!(
            "<samlp:ArtifactResolve xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{now}\" Destination=\"{dest}\"><saml:Issuer>{iss}</saml:Issuer>{sig}\
             <samlp:Artifact>{art}</samlp:Artifact></samlp:ArtifactResolve>",
            dest = escape(destination),
            iss = escape(issuer),
            art = escape(artifact),
        )
    };
    let body = match key {
        Some(key) => dsig::sign(template, &id, key)?,
        None => template(""),
    };
    Ok((id, soap(&body)))
}

/// The artifact an ArtifactResolve names, read without verifying anything: only to find which
/// login a refused request belongs to.
pub fn unverified_artifact(xml: &str) -> Option<String> {
    let doc = parse(xml).ok()?;
    let el = soap_body_element(&doc).ok()?;
    let artifact = text_of(child(el, NS_SAMLP, "Artifact"));
    (!artifact.is_empty()).then_some(artifact)
}

/// What the TVS reads from an ArtifactResolve after verifying it.
#[derive(Debug, Clone)]
pub struct ArtifactResolve {
    pub id: String,
    pub issuer: String,
    pub artifact: String,
}

pub fn parse_artifact_resolve<'m>(
    xml: &str,
    sp_lookup: impl Fn(&str) -> Option<&'m EntityMetadata>,
) -> Result<ArtifactResolve, SamlError> {
    let doc = parse(xml)?;
    let el = soap_body_element(&doc)?;
    if el.tag_name().name() != "ArtifactResolve" {
        return Err(SamlError::Invalid(
            "SOAP body is not an ArtifactResolve".into(),
        ));
    }
    let issuer = text_of(child(el, NS_SAML, "Issuer"));
    let sp = sp_lookup(&issuer)
        .ok_or_else(|| SamlError::Refused(format!("unknown issuer {issuer:?}")))?;
    dsig::verify(el, &sp.signing_certs)?;
    Ok(ArtifactResolve {
        id: el.attribute("ID").unwrap_or("").to_string(),
        issuer,
        artifact: text_of(child(el, NS_SAMLP, "Artifact")),
    })
}

/// The outcome the TVS reports in a Response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStatus {
    Success,
    Cancelled,
    NoAuthnContext,
}

/// Everything the TVS puts in one ArtifactResponse. Faults are applied by editing these fields.
#[derive(Debug, Clone)]
pub struct AssertionSpec {
    pub tvs_entity: String,
    pub audience: String,
    pub recipient: String,
    pub in_response_to: String,
    pub artifact_resolve_id: String,
    pub loa: Loa,
    pub bsn: String,
    pub service_uuid: String,
    pub status: LoginStatus,
    pub issued: OffsetDateTime,
    /// SubjectConfirmationData@NotOnOrAfter (+2 minutes normally).
    pub not_on_or_after: OffsetDateTime,
    /// The DV the BSN is encrypted for, and its encryption certificate (DER).
    pub encrypt_for: String,
    pub encryption_cert: Vec<u8>,
}

/// Builds the signed ArtifactResponse (signed Assertion inside), in a SOAP envelope.
/// `tamper` may edit the signed Assertion before it is embedded (to model a forged assertion).
pub fn artifact_response(
    spec: &AssertionSpec,
    key: &SamlKey,
    tamper: impl Fn(String) -> String,
) -> Result<String, SamlError> {
    let now = instant(spec.issued);
    let response_id = crate::ids::saml_id();
    let (status_xml, assertion) = match spec.status {
        LoginStatus::Success => (
            format!(
                "<samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"></samlp:StatusCode></samlp:Status>"
            ),
            tamper(signed_assertion(spec, key)?),
        ),
        LoginStatus::Cancelled => (
            format!(
                "<samlp:Status><samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{STATUS_AUTHN_FAILED}\">\
                 </samlp:StatusCode></samlp:StatusCode><samlp:StatusMessage>{CANCELLED_MESSAGE}</samlp:StatusMessage></samlp:Status>"
            ),
            String::new(),
        ),
        LoginStatus::NoAuthnContext => (
            format!(
                "<samlp:Status><samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{STATUS_NO_AUTHN_CONTEXT}\">\
                 </samlp:StatusCode></samlp:StatusCode></samlp:Status>"
            ),
            String::new(),
        ),
    };
    let outer_id = crate::ids::saml_id();
    let body = dsig::sign(
        |sig| {
            format!(
                "<samlp:ArtifactResponse xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{outer_id}\" Version=\"2.0\" \
                 IssueInstant=\"{now}\" InResponseTo=\"{ar}\"><saml:Issuer>{iss}</saml:Issuer>{sig}\
                 <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"></samlp:StatusCode></samlp:Status>\
                 <samlp:Response ID=\"{response_id}\" Version=\"2.0\" IssueInstant=\"{now}\" InResponseTo=\"{irt}\" Destination=\"{dest}\">\
                 <saml:Issuer>{iss}</saml:Issuer>{status_xml}{assertion}</samlp:Response></samlp:ArtifactResponse>",
                ar = escape(&spec.artifact_resolve_id),
                iss = escape(&spec.tvs_entity),
                irt = escape(&spec.in_response_to),
                dest = escape(&spec.recipient),
            )
        },
        &outer_id,
        key,
    )?;
    Ok(soap(&body))
}

fn signed_assertion(spec: &AssertionSpec, key: &SamlKey) -> Result<String, SamlError> {
    let id = crate::ids::saml_id();
    let now = instant(spec.issued);
    let name_id = format!(
        "<saml:NameID xmlns:saml=\"{NS_SAML}\" Format=\"{NAMEID_PERSISTENT}\" NameQualifier=\"{NAME_QUALIFIER_LEGACY_BSN}\">{}</saml:NameID>",
        escape(&spec.bsn)
    );
    let encrypted = xmlenc::encrypt(&name_id, &spec.encrypt_for, &spec.encryption_cert)?;
    let transient = crate::ids::random_hex(16);
    dsig::sign(
        |sig| {
            format!(
                "<saml:Assertion xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\">\
                 <saml:Issuer>{iss}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format=\"{NAMEID_TRANSIENT}\">{transient}</saml:NameID>\
                 <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData \
                 InResponseTo=\"{irt}\" NotOnOrAfter=\"{noa}\" Recipient=\"{rcpt}\"></saml:SubjectConfirmationData></saml:SubjectConfirmation>\
                 </saml:Subject><saml:Conditions NotBefore=\"{now}\" NotOnOrAfter=\"{noa}\"><saml:AudienceRestriction>\
                 <saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
                 <saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"{id}\"><saml:AuthnContext>\
                 <saml:AuthnContextClassRef>{loa}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
                 <saml:AttributeStatement><saml:Attribute Name=\"{ATTR_SERVICE_UUID}\"><saml:AttributeValue>{svc}</saml:AttributeValue></saml:Attribute>\
                 <saml:Attribute Name=\"{ATTR_ACTING_SUBJECT}\"><saml:AttributeValue><saml:EncryptedID>{encrypted}</saml:EncryptedID>\
                 </saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>",
                iss = escape(&spec.tvs_entity),
                irt = escape(&spec.in_response_to),
                noa = instant(spec.not_on_or_after),
                rcpt = escape(&spec.recipient),
                aud = escape(&spec.audience),
                loa = spec.loa.uri(),
                svc = escape(&spec.service_uuid),
            )
        },
        &id,
        key,
    )
}

// ---------------------------------------------------------------------------------------------
// The DV's side: consuming an ArtifactResponse

/// What the DV checks in an ArtifactResponse. Each `check_*` flag exists so the simulated DVA's
/// quirks can switch one check off; a conformant DV has them all on.
#[derive(Debug, Clone)]
pub struct AssertionPolicy<'a> {
    pub idp_signing_certs: &'a [Vec<u8>],
    pub own_entity: &'a str,
    pub acs_url: &'a str,
    pub expected_in_response_to: &'a str,
    pub expected_artifact_resolve_id: &'a str,
    pub min_loa: Loa,
    pub decryption_key: &'a SamlKey,
    pub now: OffsetDateTime,
    pub check_signatures: bool,
    pub check_audience: bool,
    pub check_loa: bool,
    pub check_subject_confirmation: bool,
}

/// A successful login as the DV understands it.
#[derive(Debug, Clone)]
pub struct Login {
    pub bsn: String,
    pub loa: Loa,
}

/// Why there is no login: the user's choice (cancel), or a refusal by the DV's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    Cancelled,
    LoaTooLow(String),
    Refused(String),
}

impl std::fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginFailure::Cancelled => write!(f, "the user cancelled the login"),
            LoginFailure::LoaTooLow(s) => write!(f, "level of assurance too low: {s}"),
            LoginFailure::Refused(s) => write!(f, "{s}"),
        }
    }
}

/// Verifies an ArtifactResponse and returns the login it carries.
pub fn consume_artifact_response(
    xml: &str,
    policy: &AssertionPolicy<'_>,
) -> Result<Login, LoginFailure> {
    let refused = |e: SamlError| LoginFailure::Refused(e.to_string());
    let doc = parse(xml).map_err(refused)?;
    let outer = soap_body_element(&doc).map_err(refused)?;
    if outer.tag_name().name() != "ArtifactResponse" {
        return Err(LoginFailure::Refused(
            "SOAP body is not an ArtifactResponse".into(),
        ));
    }
    if policy.check_signatures {
        dsig::verify(outer, policy.idp_signing_certs).map_err(refused)?;
    }
    if outer.attribute("InResponseTo") != Some(policy.expected_artifact_resolve_id) {
        return Err(LoginFailure::Refused(
            "ArtifactResponse InResponseTo does not match our ArtifactResolve".into(),
        ));
    }
    let response = child(outer, NS_SAMLP, "Response")
        .ok_or_else(|| LoginFailure::Refused("no Response".into()))?;
    let status = child(response, NS_SAMLP, "Status");
    let top = status.and_then(|s| child(s, NS_SAMLP, "StatusCode"));
    let code = top.and_then(|c| c.attribute("Value")).unwrap_or("");
    if code != STATUS_SUCCESS {
        let second = top
            .and_then(|c| child(c, NS_SAMLP, "StatusCode"))
            .and_then(|c| c.attribute("Value"))
            .unwrap_or("");
        let message = text_of(status.and_then(|s| child(s, NS_SAMLP, "StatusMessage")));
        return Err(match (second, message.as_str()) {
            (STATUS_AUTHN_FAILED, CANCELLED_MESSAGE) => LoginFailure::Cancelled,
            (STATUS_NO_AUTHN_CONTEXT, _) => {
                LoginFailure::LoaTooLow("the TVS reported NoAuthnContext".into())
            }
            _ => LoginFailure::Refused(format!("TVS status {code} {second} {message}")),
        });
    }
    let mut assertions = children(response, NS_SAML, "Assertion");
    let assertion = assertions
        .next()
        .ok_or_else(|| LoginFailure::Refused("no Assertion".into()))?;
    if assertions.next().is_some() || child(response, NS_SAML, "EncryptedAssertion").is_some() {
        return Err(LoginFailure::Refused(
            "exactly one plain Assertion expected".into(),
        ));
    }
    if policy.check_signatures {
        dsig::verify(assertion, policy.idp_signing_certs).map_err(refused)?;
    }
    if policy.check_subject_confirmation {
        let data = assertion
            .descendants()
            .find(|n| n.tag_name().name() == "SubjectConfirmationData")
            .ok_or_else(|| LoginFailure::Refused("no SubjectConfirmationData".into()))?;
        if data.attribute("Recipient") != Some(policy.acs_url) {
            return Err(LoginFailure::Refused(
                "Recipient is not our assertion consumer service".into(),
            ));
        }
        if data.attribute("InResponseTo") != Some(policy.expected_in_response_to) {
            return Err(LoginFailure::Refused(
                "InResponseTo does not match our AuthnRequest".into(),
            ));
        }
        let noa = data.attribute("NotOnOrAfter").and_then(parse_instant);
        if noa.is_none_or(|t| policy.now >= t) {
            return Err(LoginFailure::Refused(
                "SubjectConfirmationData NotOnOrAfter has passed".into(),
            ));
        }
    }
    if policy.check_audience {
        let audiences: Vec<String> = assertion
            .descendants()
            .filter(|n| n.tag_name().name() == "Audience")
            .map(|n| text_of(Some(n)))
            .collect();
        if !audiences.iter().any(|a| a == policy.own_entity) {
            return Err(LoginFailure::Refused(format!(
                "our entityID is not in the Audience ({audiences:?})"
            )));
        }
    }
    let loa_uri = text_of(
        assertion
            .descendants()
            .find(|n| n.tag_name().name() == "AuthnContextClassRef"),
    );
    let loa = Loa::from_uri(&loa_uri);
    if policy.check_loa && loa.is_none_or(|l| l < policy.min_loa) {
        return Err(LoginFailure::LoaTooLow(format!(
            "{loa_uri} is below {}",
            policy.min_loa.uri()
        )));
    }
    let encrypted = assertion
        .descendants()
        .filter(|n| {
            n.tag_name().name() == "Attribute" && n.attribute("Name") == Some(ATTR_ACTING_SUBJECT)
        })
        .find_map(|a| {
            a.descendants()
                .find(|n| n.tag_name().name() == "EncryptedID")
        })
        .ok_or_else(|| LoginFailure::Refused("no encrypted ActingSubjectID".into()))?;
    let plain =
        xmlenc::decrypt(encrypted, policy.own_entity, policy.decryption_key).map_err(refused)?;
    let name_doc = parse(&plain).map_err(refused)?;
    let name_id = name_doc.root_element();
    if name_id.attribute("NameQualifier") != Some(NAME_QUALIFIER_LEGACY_BSN) {
        return Err(LoginFailure::Refused(
            "ActingSubjectID is not a legacy-BSN".into(),
        ));
    }
    Ok(Login {
        bsn: text_of(Some(name_id)),
        loa: loa.unwrap_or(Loa::Basic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Pki;

    struct Keys {
        tvs: std::sync::Arc<SamlKey>,
        dv_sign: std::sync::Arc<SamlKey>,
        dv_enc: std::sync::Arc<SamlKey>,
    }

    fn keys() -> Keys {
        let pki = Pki::generate().unwrap();
        Keys {
            tvs: pki.saml_key("tvs").unwrap(),
            dv_sign: pki.saml_key("dv-sign").unwrap(),
            dv_enc: pki.saml_key("dv-enc").unwrap(),
        }
    }

    fn spec(k: &Keys) -> AssertionSpec {
        let now = OffsetDateTime::now_utc();
        AssertionSpec {
            tvs_entity: "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9000".into(),
            audience: "urn:dv".into(),
            recipient: "https://dva/acs".into(),
            in_response_to: "_req".into(),
            artifact_resolve_id: "_ar".into(),
            loa: Loa::Substantial,
            bsn: "999911533".into(),
            service_uuid: "svc".into(),
            status: LoginStatus::Success,
            issued: now,
            not_on_or_after: now + time::Duration::minutes(2),
            encrypt_for: "urn:dv".into(),
            encryption_cert: k.dv_enc.cert_der.clone(),
        }
    }

    fn policy<'a>(k: &'a Keys, certs: &'a [Vec<u8>]) -> AssertionPolicy<'a> {
        AssertionPolicy {
            idp_signing_certs: certs,
            own_entity: "urn:dv",
            acs_url: "https://dva/acs",
            expected_in_response_to: "_req",
            expected_artifact_resolve_id: "_ar",
            min_loa: Loa::Substantial,
            decryption_key: &k.dv_enc,
            now: OffsetDateTime::now_utc(),
            check_signatures: true,
            check_audience: true,
            check_loa: true,
            check_subject_confirmation: true,
        }
    }

    #[test]
    fn conformant_response_yields_the_bsn() {
        let k = keys();
        let xml = artifact_response(&spec(&k), &k.tvs, |a| a).unwrap();
        let certs = vec![k.tvs.cert_der.clone()];
        let login = consume_artifact_response(&xml, &policy(&k, &certs)).unwrap();
        assert_eq!(login.bsn, "999911533");
        assert_eq!(login.loa, Loa::Substantial);
    }

    #[test]
    fn tampered_assertion_and_foreign_signer_are_refused() {
        let k = keys();
        let certs = vec![k.tvs.cert_der.clone()];
        let tampered = artifact_response(&spec(&k), &k.tvs, |a| {
            a.replace("Substantial", "High")
                .replace("substantial", "high")
        })
        .unwrap();
        let err = consume_artifact_response(&tampered, &policy(&k, &certs)).unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        let foreign = vec![k.dv_sign.cert_der.clone()];
        let ok = artifact_response(&spec(&k), &k.tvs, |a| a).unwrap();
        let err = consume_artifact_response(&ok, &policy(&k, &foreign)).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }

    #[test]
    fn audience_loa_and_expiry_are_enforced_and_higher_loa_accepted() {
        let k = keys();
        let certs = vec![k.tvs.cert_der.clone()];
        let mut s = spec(&k);
        s.audience = "urn:other".into();
        let xml = artifact_response(&s, &k.tvs, |a| a).unwrap();
        assert!(
            consume_artifact_response(&xml, &policy(&k, &certs))
                .unwrap_err()
                .to_string()
                .contains("Audience")
        );
        let mut lax = policy(&k, &certs);
        lax.check_audience = false;
        assert!(consume_artifact_response(&xml, &lax).is_ok());

        let mut s = spec(&k);
        s.loa = Loa::Low;
        let xml = artifact_response(&s, &k.tvs, |a| a).unwrap();
        assert!(matches!(
            consume_artifact_response(&xml, &policy(&k, &certs)),
            Err(LoginFailure::LoaTooLow(_))
        ));
        s.loa = Loa::High;
        let xml = artifact_response(&s, &k.tvs, |a| a).unwrap();
        assert_eq!(
            consume_artifact_response(&xml, &policy(&k, &certs))
                .unwrap()
                .loa,
            Loa::High
        );

        let mut s = spec(&k);
        s.not_on_or_after = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let xml = artifact_response(&s, &k.tvs, |a| a).unwrap();
        assert!(
            consume_artifact_response(&xml, &policy(&k, &certs))
                .unwrap_err()
                .to_string()
                .contains("NotOnOrAfter")
        );
    }

    #[test]
    fn cancel_is_recognised() {
        let k = keys();
        let mut s = spec(&k);
        s.status = LoginStatus::Cancelled;
        let xml = artifact_response(&s, &k.tvs, |a| a).unwrap();
        let certs = vec![k.tvs.cert_der.clone()];
        assert_eq!(
            consume_artifact_response(&xml, &policy(&k, &certs)).unwrap_err(),
            LoginFailure::Cancelled
        );
    }

    #[test]
    fn authn_request_round_trips_and_rejects_a_wrong_key() {
        let k = keys();
        let req = AuthnRequest {
            id: crate::ids::saml_id(),
            issuer: "urn:dv".into(),
            destination: "https://tvs/sso".into(),
            acs_index: 0,
            requested_loa: Loa::Substantial,
        };
        let posted = req.to_post_binding(&k.dv_sign).unwrap();
        let md = parse_metadata(&sp_metadata(
            "urn:dv",
            &k.dv_sign,
            &k.dv_enc,
            "https://dva/acs",
        ))
        .unwrap();
        let (parsed, _) =
            AuthnRequest::from_post_binding(&posted, |e| (e == md.entity_id).then_some(&md))
                .unwrap();
        assert_eq!(parsed.id, req.id);
        let wrong = parse_metadata(&sp_metadata(
            "urn:dv",
            &k.dv_enc,
            &k.dv_enc,
            "https://dva/acs",
        ))
        .unwrap();
        assert!(AuthnRequest::from_post_binding(&posted, |_| Some(&wrong)).is_err());
    }

    #[test]
    fn a_wrapped_duplicate_id_is_refused() {
        let k = keys();
        let xml = artifact_response(&spec(&k), &k.tvs, |a| a).unwrap();
        let doc = Document::parse(&xml).unwrap();
        let assertion = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Assertion")
            .unwrap();
        let id = assertion.attribute("ID").unwrap().to_string();
        let wrapped = xml.replacen(
            "<samlp:Status>",
            &format!("<saml:Evil xmlns:saml=\"{NS_SAML}\" ID=\"{id}\"></saml:Evil><samlp:Status>"),
            1,
        );
        let certs = vec![k.tvs.cert_der.clone()];
        let mut p = policy(&k, &certs);
        p.expected_artifact_resolve_id = "_ar";
        let err = consume_artifact_response(&wrapped, &p).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
    }
}
