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
pub mod forge;
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

/// Bounds on a SAML message: nodes (at parse) and nesting depth (after it). Canonicalization
/// recurses, so depth is bounded before anything walks the tree.
const MAX_NODES: u32 = crate::limits::MAX_XML_NODES;
const MAX_DEPTH: usize = crate::limits::MAX_XML_DEPTH;

/// Parses a SAML message or metadata the strict way: no DTD, at most `MAX_NODES` nodes and
/// `MAX_DEPTH` levels. Public so that the fuzz targets (`fuzz/`) canonicalize exactly what
/// the TVS and the DV would.
pub fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    let doc = Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..Default::default()
        },
    )
    .map_err(|e| SamlError::Xml(e.to_string()))?;
    bounded(doc)
}

/// `doc`, unless it nests deeper than [`MAX_DEPTH`].
fn bounded(doc: Document<'_>) -> Result<Document<'_>, SamlError> {
    // Document order puts every parent before its children: one pass, each depth from its
    // parent's.
    let mut depth = vec![0usize; doc.descendants().count()];
    for n in doc.descendants() {
        let d = n.parent().map_or(0, |p| depth[p.id().get_usize()] + 1);
        depth[n.id().get_usize()] = d;
        if n.is_element() && d > MAX_DEPTH {
            return Err(SamlError::Invalid(format!(
                "the message nests deeper than {MAX_DEPTH} elements"
            )));
        }
    }
    Ok(doc)
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

/// The SAML-assertion-namespace elements at `path` below `node`, child by child.
fn at_path<'a, 'i>(node: Node<'a, 'i>, path: &[&str]) -> Vec<Node<'a, 'i>> {
    let mut level = vec![node];
    for local in path {
        level = level
            .into_iter()
            .flat_map(|n| {
                n.children()
                    .filter(|c| c.is_element() && c.tag_name().name() == *local)
                    .filter(|c| matches!(c.tag_name().namespace(), Some(NS_SAML)))
            })
            .collect();
    }
    level
}

/// The whole text content (comments and processing instructions left out), trimmed: never only
/// the first text node, which a comment would cut short.
fn text_of(node: Option<Node<'_, '_>>) -> String {
    node.map(dsig::whole_text)
        .unwrap_or_default()
        .trim()
        .to_string()
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
    /// How long ago the IssueInstant says the request was made (zero: now).
    pub issued_ago: time::Duration,
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
        let now = instant(OffsetDateTime::now_utc() - shape.issued_ago);
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
            .and_then(|n| Loa::from_uri(&text_of(Some(n))))
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

/// Whether `artifact` is a type-0x0004 artifact whose SourceID is `entity`'s (SHA-1 of its
/// entityID), the check a DV makes before resolving it anywhere.
pub fn artifact_from(artifact: &str, entity: &str) -> bool {
    let Ok(raw) = B64.decode(artifact.trim()) else {
        return false;
    };
    raw.len() == 44 && raw[..2] == [0x00, 0x04] && raw[4..24] == source_id(entity)
}

fn source_id(entity: &str) -> [u8; 20] {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        entity.as_bytes(),
    );
    digest.as_ref().try_into().unwrap_or([0; 20])
}

/// A SAML 2.0 type-0x0004 artifact: type code, endpoint index, SHA-1 of the issuer's entityID
/// (the SourceID, as the binding defines it) and a random message handle.
pub fn new_artifact(issuer_entity: &str) -> String {
    let mut raw = vec![0x00, 0x04, 0x00, 0x00];
    raw.extend_from_slice(&source_id(issuer_entity));
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

/// Everything the TVS puts in one ArtifactResponse. Faults are applied by editing these fields
/// (see [`forge`]); an empty `in_response_to` or `audience` leaves the attribute or element out.
#[derive(Debug, Clone)]
pub struct AssertionSpec {
    pub tvs_entity: String,
    pub audience: String,
    /// SubjectConfirmationData@Recipient: the DV's assertion consumer service.
    pub recipient: String,
    /// Response@Destination: the same ACS, unless a fault says otherwise.
    pub destination: String,
    pub in_response_to: String,
    pub artifact_resolve_id: String,
    pub loa: Loa,
    pub bsn: String,
    pub service_uuid: String,
    pub status: LoginStatus,
    pub issued: OffsetDateTime,
    /// Conditions@NotBefore (the issue instant normally).
    pub not_before: OffsetDateTime,
    /// SubjectConfirmationData@NotOnOrAfter and Conditions@NotOnOrAfter (+2 minutes normally).
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
    let assertion = match spec.status {
        LoginStatus::Success => tamper(assertion(spec, key, &AssertionOptions::conformant(spec))?),
        _ => String::new(),
    };
    let response = response(spec, &status_xml(spec.status), "", &assertion);
    outer(spec, &response, key, dsig::SignAlg::RsaSha256, true)
}

/// The `samlp:Status` the TVS reports for `status`.
pub(crate) fn status_xml(status: LoginStatus) -> String {
    match status {
        LoginStatus::Success => format!(
            "<samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"></samlp:StatusCode></samlp:Status>"
        ),
        LoginStatus::Cancelled => format!(
            "<samlp:Status><samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{STATUS_AUTHN_FAILED}\">\
             </samlp:StatusCode></samlp:StatusCode><samlp:StatusMessage>{CANCELLED_MESSAGE}</samlp:StatusMessage></samlp:Status>"
        ),
        LoginStatus::NoAuthnContext => format!(
            "<samlp:Status><samlp:StatusCode Value=\"{STATUS_RESPONDER}\"><samlp:StatusCode Value=\"{STATUS_NO_AUTHN_CONTEXT}\">\
             </samlp:StatusCode></samlp:StatusCode></samlp:Status>"
        ),
    }
}

/// The unsigned `samlp:Response`: `extensions` go after the Issuer, `body` after the Status.
pub(crate) fn response(spec: &AssertionSpec, status: &str, extensions: &str, body: &str) -> String {
    let irt = if spec.in_response_to.is_empty() {
        String::new()
    } else {
        format!(" InResponseTo=\"{}\"", escape(&spec.in_response_to))
    };
    format!(
        "<samlp:Response ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\"{irt} Destination=\"{dest}\">\
         <saml:Issuer>{iss}</saml:Issuer>{extensions}{status}{body}</samlp:Response>",
        id = crate::ids::saml_id(),
        now = instant(spec.issued),
        dest = escape(&spec.destination),
        iss = escape(&spec.tvs_entity),
    )
}

/// The ArtifactResponse around `response`, signed with `alg` unless `signed` is false, in a SOAP
/// envelope.
pub(crate) fn outer(
    spec: &AssertionSpec,
    response: &str,
    key: &SamlKey,
    alg: dsig::SignAlg,
    signed: bool,
) -> Result<String, SamlError> {
    let outer_id = crate::ids::saml_id();
    let template = |sig: &str| {
        format!(
            "<samlp:ArtifactResponse xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{outer_id}\" Version=\"2.0\" \
             IssueInstant=\"{now}\" InResponseTo=\"{ar}\"><saml:Issuer>{iss}</saml:Issuer>{sig}\
             <samlp:Status><samlp:StatusCode Value=\"{STATUS_SUCCESS}\"></samlp:StatusCode></samlp:Status>{response}</samlp:ArtifactResponse>",
            now = instant(spec.issued),
            ar = escape(&spec.artifact_resolve_id),
            iss = escape(&spec.tvs_entity),
        )
    };
    let body = if signed {
        dsig::sign_with(template, &outer_id, key, alg)?
    } else {
        template("")
    };
    Ok(soap(&body))
}

/// How one Assertion is made; [`AssertionOptions::conformant`] is what eID SAML 4.4 wants.
#[derive(Debug, Clone)]
pub(crate) struct AssertionOptions {
    pub id: String,
    pub alg: dsig::SignAlg,
    pub signed: bool,
    /// The NameID's content as XML (the escaped BSN, or a split of it).
    pub name_id_content: String,
    pub encryption: xmlenc::EncryptOptions,
    /// The transient NameID of the Subject.
    pub transient: String,
}

impl AssertionOptions {
    pub fn conformant(spec: &AssertionSpec) -> AssertionOptions {
        AssertionOptions {
            id: crate::ids::saml_id(),
            alg: dsig::SignAlg::RsaSha256,
            signed: true,
            name_id_content: escape(&spec.bsn),
            encryption: xmlenc::EncryptOptions::for_recipient(&spec.encrypt_for),
            transient: crate::ids::random_hex(16),
        }
    }
}

/// One Assertion, signed by `key` unless `options.signed` is false.
pub(crate) fn assertion(
    spec: &AssertionSpec,
    key: &SamlKey,
    options: &AssertionOptions,
) -> Result<String, SamlError> {
    let id = &options.id;
    let now = instant(spec.issued);
    let name_id = format!(
        "<saml:NameID xmlns:saml=\"{NS_SAML}\" Format=\"{NAMEID_PERSISTENT}\" NameQualifier=\"{NAME_QUALIFIER_LEGACY_BSN}\">{}</saml:NameID>",
        options.name_id_content
    );
    let encrypted = xmlenc::encrypt_with(&name_id, &spec.encryption_cert, &options.encryption)?;
    let irt = if spec.in_response_to.is_empty() {
        String::new()
    } else {
        format!(" InResponseTo=\"{}\"", escape(&spec.in_response_to))
    };
    let audience = if spec.audience.is_empty() {
        String::new()
    } else {
        format!(
            "<saml:AudienceRestriction><saml:Audience>{}</saml:Audience></saml:AudienceRestriction>",
            escape(&spec.audience)
        )
    };
    let template = |sig: &str| {
        format!(
            "<saml:Assertion xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\">\
             <saml:Issuer>{iss}</saml:Issuer>{sig}<saml:Subject><saml:NameID Format=\"{NAMEID_TRANSIENT}\">{transient}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData\
             {irt} NotOnOrAfter=\"{noa}\" Recipient=\"{rcpt}\"></saml:SubjectConfirmationData></saml:SubjectConfirmation>\
             </saml:Subject><saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\">{audience}</saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{now}\" SessionIndex=\"{id}\"><saml:AuthnContext>\
             <saml:AuthnContextClassRef>{loa}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
             <saml:AttributeStatement><saml:Attribute Name=\"{ATTR_SERVICE_UUID}\"><saml:AttributeValue>{svc}</saml:AttributeValue></saml:Attribute>\
             <saml:Attribute Name=\"{ATTR_ACTING_SUBJECT}\"><saml:AttributeValue><saml:EncryptedID>{encrypted}</saml:EncryptedID>\
             </saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>",
            iss = escape(&spec.tvs_entity),
            transient = options.transient,
            noa = instant(spec.not_on_or_after),
            nb = instant(spec.not_before),
            rcpt = escape(&spec.recipient),
            loa = spec.loa.uri(),
            svc = escape(&spec.service_uuid),
        )
    };
    if options.signed {
        dsig::sign_with(template, id, key, options.alg)
    } else {
        Ok(template(""))
    }
}

// ---------------------------------------------------------------------------------------------
// The DV's side: consuming an ArtifactResponse

/// What the DV checks in an ArtifactResponse. Each `check_*` flag exists so the simulated DVA's
/// quirks can switch one check off; a conformant DV has them all on, and `lax` at its default.
#[derive(Debug, Clone)]
pub struct AssertionPolicy<'a> {
    pub idp_signing_certs: &'a [Vec<u8>],
    /// The TVS's entityID (from its metadata): every Issuer must name it.
    pub idp_entity: &'a str,
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
    pub lax: SpLax,
}

/// Deliberate weaknesses of a DV's assertion consumer, each the shape of a published
/// vulnerability or one dropped rule of eID SAML 4.4, for the simulated DVA's quirks. The
/// default, all off, is the strict SP: one parser, no DOCTYPE, data read only from the element
/// whose signature was verified, text read as the whole text content.
#[derive(Debug, Clone, Default)]
pub struct SpLax {
    pub signature: dsig::SigLax,
    pub decryption: xmlenc::DecryptLax,
    /// The Assertion's signature is checked only when there is one.
    pub assertion_signature_optional: bool,
    /// The ArtifactResponse's signature is checked only when there is one.
    pub message_signature_optional: bool,
    /// Signatures are verified "somewhere in the message" and data read from the first element
    /// of its kind ([`dsig::verify_detached`]): open to XSW1–XSW8 and duplicate IDs.
    pub signature_detached: bool,
    /// The first Assertion's signature is verified, the last Assertion read (CVE-2022-41912).
    pub last_assertion_read: bool,
    /// The Assertion's data are found by searching all its descendants instead of by their
    /// schema paths, so they can come from an unsigned `ds:Object` inside its Signature.
    pub data_from_descendants: bool,
    /// A DOCTYPE is parsed and its internal entities expanded.
    pub doctype_accepted: bool,
    /// The NameID's text is cut from the decrypted XML by string search, up to the first `<`.
    pub name_id_by_string_search: bool,
    pub not_before_unchecked: bool,
    pub expiry_unchecked: bool,
    pub in_response_to_unchecked: bool,
    /// InResponseTo is compared only when present.
    pub unsolicited_accepted: bool,
    pub recipient_unchecked: bool,
    /// The Audience is checked only when there is an AudienceRestriction.
    pub audience_optional: bool,
    pub destination_unchecked: bool,
    pub issuer_unchecked: bool,
    /// The Status is not read: a Response with an Assertion logs in whatever its status.
    pub status_unchecked: bool,
}

/// [U] Clock skew allowed on NotBefore: eID SAML names none; one minute.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(1);

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

fn refuse<T>(why: impl Into<String>) -> Result<T, LoginFailure> {
    Err(LoginFailure::Refused(why.into()))
}

fn parse_message<'i>(xml: &'i str, lax: &SpLax) -> Result<Document<'i>, LoginFailure> {
    if !lax.doctype_accepted {
        return Document::parse_with_options(
            xml,
            roxmltree::ParsingOptions {
                allow_dtd: false,
                nodes_limit: MAX_NODES,
                ..Default::default()
            },
        )
        .map_err(|e| match e {
            roxmltree::Error::DtdDetected => {
                LoginFailure::Refused("a DOCTYPE is refused in SAML messages".into())
            }
            e => LoginFailure::Refused(format!("parse XML: {e}")),
        })
        .and_then(|doc| bounded(doc).map_err(|e| LoginFailure::Refused(e.to_string())));
    }
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        ..Default::default()
    };
    Document::parse_with_options(xml, options)
        .map_err(|e| LoginFailure::Refused(format!("parse XML: {e}")))
        .and_then(|doc| bounded(doc).map_err(|e| LoginFailure::Refused(e.to_string())))
}

/// Verifies an ArtifactResponse and returns the login it carries.
pub fn consume_artifact_response(
    xml: &str,
    policy: &AssertionPolicy<'_>,
) -> Result<Login, LoginFailure> {
    let lax = &policy.lax;
    let refused = |e: SamlError| LoginFailure::Refused(e.to_string());
    let doc = parse_message(xml, lax)?;
    let outer = soap_body_element(&doc).map_err(refused)?;
    if outer.tag_name().name() != "ArtifactResponse" {
        return refuse("SOAP body is not an ArtifactResponse");
    }
    let certs = policy.idp_signing_certs;
    let verify = |element: Node<'_, '_>, optional: bool| -> Result<(), LoginFailure> {
        if !policy.check_signatures || (optional && !dsig::is_signed(element)) {
            return Ok(());
        }
        dsig::verify_with(element, certs, lax.signature).map_err(refused)
    };
    if lax.signature_detached && policy.check_signatures {
        dsig::verify_detached(outer, certs).map_err(refused)?;
    } else {
        verify(outer, lax.message_signature_optional)?;
    }
    if outer.attribute("InResponseTo") != Some(policy.expected_artifact_resolve_id) {
        return refuse("ArtifactResponse InResponseTo does not match our ArtifactResolve");
    }
    let issuer_ok = |element: Node<'_, '_>| {
        lax.issuer_unchecked || text_of(child(element, NS_SAML, "Issuer")) == policy.idp_entity
    };
    if !issuer_ok(outer) {
        return refuse("the ArtifactResponse's Issuer is not the TVS");
    }
    let Some(response) = child(outer, NS_SAMLP, "Response") else {
        return refuse(
            "the ArtifactResponse holds no Response: the TVS did not know the artifact (unknown, spent or expired)",
        );
    };
    if !issuer_ok(response) {
        return refuse("the Response's Issuer is not the TVS");
    }
    if !lax.destination_unchecked && response.attribute("Destination") != Some(policy.acs_url) {
        return refuse("the Response's Destination is not our assertion consumer service");
    }
    let in_response_to_ok = |value: Option<&str>| match value {
        _ if lax.in_response_to_unchecked => true,
        None => lax.unsolicited_accepted,
        Some(v) => v == policy.expected_in_response_to,
    };
    if !in_response_to_ok(response.attribute("InResponseTo")) {
        return refuse("the Response's InResponseTo does not match our AuthnRequest");
    }
    if !lax.status_unchecked {
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
    }
    let assertion = if lax.signature_detached {
        // The weakness: verify whatever signature there is, read the first Assertion found.
        if policy.check_signatures {
            dsig::verify_detached(response, certs).map_err(refused)?;
        }
        response
            .descendants()
            .find(|n| {
                n.tag_name().namespace() == Some(NS_SAML) && n.tag_name().name() == "Assertion"
            })
            .ok_or_else(|| LoginFailure::Refused("no Assertion".into()))?
    } else {
        let assertions: Vec<Node> = children(response, NS_SAML, "Assertion").collect();
        let first = *assertions
            .first()
            .ok_or_else(|| LoginFailure::Refused("no Assertion".into()))?;
        if lax.last_assertion_read {
            // The weakness: the first is verified, the last is read.
            verify(first, lax.assertion_signature_optional)?;
            *assertions.last().unwrap_or(&first)
        } else {
            if assertions.len() > 1 || child(response, NS_SAML, "EncryptedAssertion").is_some() {
                return refuse("exactly one plain Assertion expected");
            }
            verify(first, lax.assertion_signature_optional)?;
            first
        }
    };
    if !issuer_ok(assertion) {
        return refuse("the Assertion's Issuer is not the TVS");
    }
    // Data by their schema paths, never by a descendant search (which would reach into the
    // Signature's unsigned parts); the weakness searches.
    let find = |path: &[&str]| -> Vec<Node<'_, '_>> {
        if lax.data_from_descendants {
            let last = path.last().copied().unwrap_or("");
            assertion
                .descendants()
                .filter(|n| n.is_element() && n.tag_name().name() == last)
                .collect()
        } else {
            at_path(assertion, path)
        }
    };
    if policy.check_subject_confirmation {
        let data = *find(&["Subject", "SubjectConfirmation", "SubjectConfirmationData"])
            .first()
            .ok_or_else(|| LoginFailure::Refused("no SubjectConfirmationData".into()))?;
        if !lax.recipient_unchecked && data.attribute("Recipient") != Some(policy.acs_url) {
            return refuse("Recipient is not our assertion consumer service");
        }
        if !in_response_to_ok(data.attribute("InResponseTo")) {
            return refuse("InResponseTo does not match our AuthnRequest");
        }
        let noa = data.attribute("NotOnOrAfter").and_then(parse_instant);
        if !lax.expiry_unchecked && noa.is_none_or(|t| policy.now >= t) {
            return refuse("SubjectConfirmationData NotOnOrAfter has passed");
        }
        let conditions = child(assertion, NS_SAML, "Conditions");
        let nb = conditions
            .and_then(|c| c.attribute("NotBefore"))
            .and_then(parse_instant);
        if !lax.not_before_unchecked && nb.is_some_and(|t| policy.now + CLOCK_SKEW < t) {
            return refuse("the Assertion is not yet valid (Conditions NotBefore)");
        }
        let c_noa = conditions
            .and_then(|c| c.attribute("NotOnOrAfter"))
            .and_then(parse_instant);
        if !lax.expiry_unchecked && c_noa.is_some_and(|t| policy.now >= t) {
            return refuse("Conditions NotOnOrAfter has passed");
        }
    }
    if policy.check_audience {
        let audiences: Vec<String> = find(&["Conditions", "AudienceRestriction", "Audience"])
            .into_iter()
            .map(|n| text_of(Some(n)))
            .collect();
        let skip = audiences.is_empty() && lax.audience_optional;
        if !skip && !audiences.iter().any(|a| a == policy.own_entity) {
            return refuse(format!(
                "our entityID is not in the Audience ({audiences:?})"
            ));
        }
    }
    let loa_uri = text_of(
        find(&["AuthnStatement", "AuthnContext", "AuthnContextClassRef"])
            .first()
            .copied(),
    );
    let loa = Loa::from_uri(&loa_uri);
    if policy.check_loa && loa.is_none_or(|l| l < policy.min_loa) {
        return Err(LoginFailure::LoaTooLow(format!(
            "{loa_uri} is below {}",
            policy.min_loa.uri()
        )));
    }
    let encrypted = find(&["AttributeStatement", "Attribute"])
        .into_iter()
        .filter(|a| a.attribute("Name") == Some(ATTR_ACTING_SUBJECT))
        .find_map(|a| {
            at_path(a, &["AttributeValue", "EncryptedID"])
                .first()
                .copied()
        })
        .ok_or_else(|| LoginFailure::Refused("no encrypted ActingSubjectID".into()))?;
    let plain = xmlenc::decrypt_with(
        encrypted,
        policy.own_entity,
        policy.decryption_key,
        lax.decryption,
    )
    .map_err(refused)?;
    let name_doc = parse(&plain).map_err(refused)?;
    let name_id = name_doc.root_element();
    if name_id.attribute("NameQualifier") != Some(NAME_QUALIFIER_LEGACY_BSN) {
        return refuse("ActingSubjectID is not a legacy-BSN");
    }
    let bsn = if lax.name_id_by_string_search {
        // The weakness: a second "parser" that stops at the first markup inside the text.
        let start = plain.find('>').map_or(0, |i| i + 1);
        let end = plain[start..].find('<').map_or(plain.len(), |i| start + i);
        plain[start..end].trim().to_string()
    } else {
        text_of(Some(name_id))
    };
    Ok(Login {
        bsn,
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
            destination: "https://dva/acs".into(),
            in_response_to: "_req".into(),
            artifact_resolve_id: "_ar".into(),
            loa: Loa::Substantial,
            bsn: "999911533".into(),
            service_uuid: "svc".into(),
            status: LoginStatus::Success,
            issued: now,
            not_before: now,
            not_on_or_after: now + time::Duration::minutes(2),
            encrypt_for: "urn:dv".into(),
            encryption_cert: k.dv_enc.cert_der.clone(),
        }
    }

    fn policy<'a>(k: &'a Keys, certs: &'a [Vec<u8>]) -> AssertionPolicy<'a> {
        AssertionPolicy {
            idp_signing_certs: certs,
            idp_entity: "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9000",
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
            lax: SpLax::default(),
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

    /// Hostile input at the mock TVS and the DV: a clear refusal, never a panic. (The HTTP
    /// endpoints bound the size before this: axum's 2 MB body limit, the DV's 1 MiB read.)
    #[test]
    fn hostile_messages_are_refused_with_a_reason() {
        let k = keys();
        let md = parse_metadata(&sp_metadata(
            "urn:dv",
            &k.dv_sign,
            &k.dv_enc,
            "https://dva/acs",
        ))
        .unwrap();
        let lookup = |e: &str| (e == md.entity_id).then_some(&md);
        let doctype = B64.encode(format!(
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"https://attacker.test/\">]>\
             <samlp:AuthnRequest xmlns:samlp=\"{NS_SAMLP}\">&x;</samlp:AuthnRequest>"
        ));
        let err = AuthnRequest::from_post_binding(&doctype, lookup).unwrap_err();
        assert!(err.to_string().contains("DTD"), "{err}");
        let err = AuthnRequest::from_post_binding("%%% not base64", lookup).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
        let huge = B64.encode(vec![0xffu8; 3 << 20]);
        let err = AuthnRequest::from_post_binding(&huge, lookup).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
        let nested = B64.encode("<a>".repeat(100_000));
        assert!(AuthnRequest::from_post_binding(&nested, lookup).is_err());
        // Well-formed and deep: refused by depth before canonicalization could recurse.
        let deep = format!("{}{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
        let err = AuthnRequest::from_post_binding(&B64.encode(&deep), lookup).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        let certs = vec![k.tvs.cert_der.clone()];
        let err = consume_artifact_response(&deep, &policy(&k, &certs)).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
        let resolve = format!(
            "<!DOCTYPE e><soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\"><soapenv:Body/></soapenv:Envelope>"
        );
        assert!(parse_artifact_resolve(&resolve, lookup).is_err());
        let certs = vec![k.tvs.cert_der.clone()];
        let err = consume_artifact_response(&resolve, &policy(&k, &certs)).unwrap_err();
        assert!(err.to_string().contains("DOCTYPE"), "{err}");
        let err = consume_artifact_response("<<<", &policy(&k, &certs)).unwrap_err();
        assert!(err.to_string().contains("parse XML"), "{err}");
    }
}
