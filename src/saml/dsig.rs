//! XML Signature, enveloped, as eID SAML 4.4 wants it: exclusive c14n, RSA-SHA256, SHA-256
//! digests, one `Reference` to the signed element's `ID`.
//!
//! Verification is deliberately strict, against signature wrapping: the `Signature` must be a
//! direct child of the element it signs, its one `Reference` must point at that element's own
//! `ID`, `ID` values must be unique in the document, and only the listed algorithms are accepted
//! (SHA-1 is refused). Callers must take data only from the element they verified.

use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::Node;

use super::{NS_DS, SamlError, c14n};
use crate::pki::SamlKey;

pub const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ALG_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// Builds a signed document. `template` renders the document with the given signature XML at
/// the place the schema wants it (empty while computing the digest); `id` is the `ID` of the
/// element to sign.
pub fn sign(
    template: impl Fn(&str) -> String,
    id: &str,
    key: &SamlKey,
) -> Result<String, SamlError> {
    sign_with(template, id, key, SignAlg::RsaSha256)
}

/// The signature algorithms the mock TVS can sign with: RSA-SHA256 as eID SAML 4.4 wants, and
/// RSA-SHA1 with SHA-1 digests, which a DV must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignAlg {
    #[default]
    RsaSha256,
    RsaSha1,
}

/// [`sign`] with a chosen algorithm.
pub fn sign_with(
    template: impl Fn(&str) -> String,
    id: &str,
    key: &SamlKey,
    alg: SignAlg,
) -> Result<String, SamlError> {
    let unsigned = template("");
    let doc = roxmltree::Document::parse(&unsigned).map_err(|e| SamlError::Xml(e.to_string()))?;
    let target = doc
        .descendants()
        .find(|n| n.attribute("ID") == Some(id))
        .ok_or_else(|| SamlError::Invalid(format!("no element with ID {id} to sign")))?;
    let (sig_alg, digest_alg, digest) = match alg {
        SignAlg::RsaSha256 => (ALG_RSA_SHA256, ALG_SHA256, &aws_lc_rs::digest::SHA256),
        SignAlg::RsaSha1 => (
            ALG_RSA_SHA1,
            ALG_SHA1,
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        ),
    };
    let digest = aws_lc_rs::digest::digest(digest, c14n::exclusive(target, None).as_bytes());
    let signed_info = format!(
        "<ds:SignedInfo xmlns:ds=\"{NS_DS}\"><ds:CanonicalizationMethod Algorithm=\"{ALG_EXC_C14N}\"></ds:CanonicalizationMethod>\
         <ds:SignatureMethod Algorithm=\"{sig_alg}\"></ds:SignatureMethod><ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"{ALG_ENVELOPED}\"></ds:Transform><ds:Transform Algorithm=\"{ALG_EXC_C14N}\"></ds:Transform>\
         </ds:Transforms><ds:DigestMethod Algorithm=\"{digest_alg}\"></ds:DigestMethod><ds:DigestValue>{}</ds:DigestValue>\
         </ds:Reference></ds:SignedInfo>",
        B64.encode(digest.as_ref())
    );
    let si_doc =
        roxmltree::Document::parse(&signed_info).map_err(|e| SamlError::Xml(e.to_string()))?;
    let si_c14n = c14n::exclusive(si_doc.root_element(), None);
    let sig = sign_bytes(si_c14n.as_bytes(), key, alg)?;
    // Inside the Signature the SignedInfo inherits `ds` from its parent.
    let signed_info_inner = signed_info.replacen(&format!(" xmlns:ds=\"{NS_DS}\""), "", 1);
    let signature = format!(
        "<ds:Signature xmlns:ds=\"{NS_DS}\">{signed_info_inner}<ds:SignatureValue>{}</ds:SignatureValue>\
         <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
        B64.encode(&sig),
        key.cert_b64()
    );
    Ok(template(&signature))
}

/// An RSA PKCS#1 v1.5 signature over `message`.
pub fn sign_bytes(message: &[u8], key: &SamlKey, alg: SignAlg) -> Result<Vec<u8>, SamlError> {
    crate::census::saml_signature();
    match alg {
        SignAlg::RsaSha256 => {
            // Loaded once per key: each load validates the key and sets up a fresh RSA blinding.
            let pair = key
                .signer
                .get_or_init(|| RsaKeyPair::from_pkcs8(&key.pkcs8).map_err(|e| e.to_string()))
                .as_ref()
                .map_err(|e| SamlError::Crypto(format!("load signing key: {e}")))?;
            let mut sig = vec![0u8; pair.public_modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| SamlError::Crypto("rsa-sha256 signing failed".into()))?;
            Ok(sig)
        }
        SignAlg::RsaSha1 => legacy_rsa_sha1(message, &key.pkcs8),
    }
}

/// RSA-SHA1 (PKCS#1 v1.5), which aws-lc-rs rightly will not produce: the mock TVS needs it only
/// to show that a DV refuses it. Textbook `m^d mod n` over the EMSA-PKCS1-v1_5 encoding.
fn legacy_rsa_sha1(message: &[u8], pkcs8: &[u8]) -> Result<Vec<u8>, SamlError> {
    use num_bigint::BigUint;
    let bad = || SamlError::Crypto("cannot read the RSA key for rsa-sha1".into());
    let (n, d) = rsa_private_parts(pkcs8).ok_or_else(bad)?;
    let k = n.len();
    // DigestInfo prefix for SHA-1 (RFC 8017 §9.2 note 1).
    const SHA1_PREFIX: [u8; 15] = [
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ];
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, message);
    let t_len = SHA1_PREFIX.len() + digest.as_ref().len();
    if k < t_len + 11 {
        return Err(bad());
    }
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, k - t_len - 3));
    em.push(0x00);
    em.extend_from_slice(&SHA1_PREFIX);
    em.extend_from_slice(digest.as_ref());
    let s = BigUint::from_bytes_be(&em)
        .modpow(&BigUint::from_bytes_be(&d), &BigUint::from_bytes_be(&n));
    let bytes = s.to_bytes_be();
    let mut out = vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    Ok(out)
}

/// The modulus (without leading zeros) and private exponent of a PKCS#8 RSA key.
fn rsa_private_parts(pkcs8: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    // PrivateKeyInfo ::= SEQUENCE { version, algorithm SEQUENCE, privateKey OCTET STRING }
    let (info, _) = der(pkcs8, 0x30)?;
    let (_, rest) = der(info, 0x02)?;
    let (_, rest) = der(rest, 0x30)?;
    let (key, _) = der(rest, 0x04)?;
    // RSAPrivateKey ::= SEQUENCE { version, n, e, d, … }
    let (seq, _) = der(key, 0x30)?;
    let (_, rest) = der(seq, 0x02)?;
    let (n, rest) = der(rest, 0x02)?;
    let (_, rest) = der(rest, 0x02)?;
    let (d, _) = der(rest, 0x02)?;
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    Some((strip(n), strip(d)))
}

/// One DER TLV of the expected tag: its contents and what follows it.
fn der(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (&rest[..len], &rest[len..]))
}

fn ds_child<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(NS_DS) && c.tag_name().name() == local
    })
}

fn ds_children<'a, 'i>(
    node: Node<'a, 'i>,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| {
        c.is_element() && c.tag_name().namespace() == Some(NS_DS) && c.tag_name().name() == local
    })
}

fn alg<'a>(n: Option<Node<'a, '_>>) -> &'a str {
    n.and_then(|n| n.attribute("Algorithm")).unwrap_or("")
}

/// Whether `element` carries a direct `ds:Signature` child.
pub fn is_signed(element: Node<'_, '_>) -> bool {
    ds_child(element, "Signature").is_some()
}

/// Deliberate weaknesses of signature verification, each the shape of a published
/// vulnerability, for the simulated DVA's quirks. The default, all off, is strict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigLax {
    /// `rsa-sha1` signatures and `sha1` digests are accepted.
    pub sha1: bool,
    /// A certificate in `KeyInfo` is trusted when its subject equals a trusted certificate's
    /// (xml-crypto 2025 family: the key travels with the message).
    pub key_info_trusted: bool,
    /// With two `SignedInfo` elements, the SignatureValue is checked over the first and the
    /// Reference taken from the last (xml-crypto 2025).
    pub signed_info_split: bool,
    /// The DigestValue is read from its first child node, a comment's text included
    /// (xml-crypto CVE-2025-29775: `<DigestValue><!--forged-->orig</DigestValue>`).
    pub digest_first_child: bool,
    /// The Reference for the signed element's ID is searched in the whole document, so a forged
    /// one placed earlier wins (ruby-saml CVE-2024-45409).
    pub reference_searched: bool,
    /// `ds:Object` (and anything else) is allowed inside the Signature, as the XML Signature
    /// schema allows; the enveloped transform leaves it out of the digest, so it is unsigned.
    pub objects_allowed: bool,
}

/// Verifies the enveloped signature on `element` against one of `trusted_certs` (DER).
pub fn verify(element: Node<'_, '_>, trusted_certs: &[Vec<u8>]) -> Result<(), SamlError> {
    verify_with(element, trusted_certs, SigLax::default())
}

/// All text of `node` and its descendants, comments and processing instructions left out.
pub fn whole_text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// Base64 text with its whitespace (line breaks) left out, decoded.
fn base64_text(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.split_whitespace().collect::<String>()).ok()
}

/// The whole text of `node`, decoded as base64.
fn base64_of(node: Option<Node<'_, '_>>) -> Option<Vec<u8>> {
    base64_text(&node.map(whole_text).unwrap_or_default())
}

/// [`verify`] with the weaknesses `lax` switches on.
pub fn verify_with(
    element: Node<'_, '_>,
    trusted_certs: &[Vec<u8>],
    lax: SigLax,
) -> Result<(), SamlError> {
    let name = element.tag_name().name();
    let bad = |why: &str| SamlError::Signature(format!("{name}: {why}"));
    let id = element
        .attribute("ID")
        .ok_or_else(|| bad("signed element has no ID"))?;
    let doc = element.document();
    if doc
        .descendants()
        .filter(|n| n.attribute("ID") == Some(id))
        .count()
        != 1
    {
        return Err(bad(
            "ID is not unique in the document (signature wrapping?)",
        ));
    }
    let mut sigs = ds_children(element, "Signature");
    let sig = sigs.next().ok_or_else(|| bad("no Signature"))?;
    if sigs.next().is_some() {
        return Err(bad("more than one Signature"));
    }
    // Nothing unsigned rides inside the Signature: SAML has no use for ds:Object.
    if !lax.objects_allowed
        && sig.children().filter(|c| c.is_element()).any(|c| {
            c.tag_name().namespace() != Some(NS_DS)
                || !matches!(
                    c.tag_name().name(),
                    "SignedInfo" | "SignatureValue" | "KeyInfo"
                )
        })
    {
        return Err(bad(
            "the Signature holds more than SignedInfo, SignatureValue and KeyInfo",
        ));
    }
    let signed_infos: Vec<Node> = ds_children(sig, "SignedInfo").collect();
    let si = *signed_infos.first().ok_or_else(|| bad("no SignedInfo"))?;
    if signed_infos.len() > 1 && !lax.signed_info_split {
        return Err(bad("more than one SignedInfo"));
    }
    // The weakness: the references come from another SignedInfo than the one verified.
    let si_refs = *signed_infos.last().unwrap_or(&si);
    if alg(ds_child(si, "CanonicalizationMethod")) != ALG_EXC_C14N {
        return Err(bad("canonicalization is not exclusive c14n"));
    }
    let sig_alg = alg(ds_child(si, "SignatureMethod"));
    let verify_alg: &'static signature::RsaParameters = match sig_alg {
        ALG_RSA_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        ALG_RSA_SHA1 if lax.sha1 => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        ALG_RSA_SHA1 => return Err(bad("SHA-1 signature refused")),
        other => return Err(bad(&format!("signature method {other:?} not accepted"))),
    };
    let mut refs = ds_children(si_refs, "Reference");
    let mut reference = refs.next().ok_or_else(|| bad("no Reference"))?;
    if refs.next().is_some() {
        return Err(bad("more than one Reference"));
    }
    if lax.reference_searched {
        // The weakness: the first Reference to this ID anywhere in the document.
        if let Some(found) = doc.descendants().find(|n| {
            n.tag_name().namespace() == Some(NS_DS)
                && n.tag_name().name() == "Reference"
                && n.attribute("URI") == Some(&format!("#{id}"))
        }) {
            reference = found;
        }
    }
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(bad("Reference does not point at the signed element"));
    }
    let transforms: Vec<&str> = ds_child(reference, "Transforms")
        .map(|t| {
            ds_children(t, "Transform")
                .map(|t| t.attribute("Algorithm").unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    if transforms
        .iter()
        .any(|t| *t != ALG_ENVELOPED && *t != ALG_EXC_C14N)
        || !transforms.contains(&ALG_ENVELOPED)
    {
        return Err(bad(&format!("transforms {transforms:?} not accepted")));
    }
    if ds_child(reference, "Transforms")
        .and_then(|t| ds_children(t, "Transform").find(|t| t.has_children()))
        .is_some()
    {
        return Err(bad("InclusiveNamespaces is not supported"));
    }
    let digest_alg = match alg(ds_child(reference, "DigestMethod")) {
        ALG_SHA256 => &aws_lc_rs::digest::SHA256,
        ALG_SHA1 if lax.sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        ALG_SHA1 => return Err(bad("SHA-1 digest refused")),
        other => return Err(bad(&format!("digest method {other:?} not accepted"))),
    };
    let digest_value = ds_child(reference, "DigestValue");
    let digest_text = if lax.digest_first_child {
        // The weakness: the first child node's data, a comment's included.
        digest_value
            .and_then(|n| n.first_child())
            .and_then(|c| c.text())
            .unwrap_or("")
            .to_string()
    } else {
        digest_value.map(whole_text).unwrap_or_default()
    };
    let expected = base64_text(&digest_text).ok_or_else(|| bad("DigestValue is not base64"))?;
    let actual = aws_lc_rs::digest::digest(
        digest_alg,
        c14n::exclusive(element, Some(sig.id())).as_bytes(),
    );
    if actual.as_ref() != expected.as_slice() {
        return Err(bad("digest mismatch: the signed content was changed"));
    }
    let sig_value = base64_of(ds_child(sig, "SignatureValue"))
        .ok_or_else(|| bad("SignatureValue is not base64"))?;
    let signed = c14n::exclusive(si, None);
    let mut keys: Vec<Vec<u8>> = trusted_certs.to_vec();
    if lax.key_info_trusted {
        keys.extend(key_info_certs_like(sig, trusted_certs));
    }
    for cert in &keys {
        let Some(public) = rsa_public_key(cert) else {
            continue;
        };
        let key = UnparsedPublicKey::new(verify_alg, public);
        crate::census::saml_verification();
        if key.verify(signed.as_bytes(), &sig_value).is_ok() {
            return Ok(());
        }
    }
    Err(bad(
        "signature does not verify against the metadata certificates",
    ))
}

/// The certificates in `sig`'s KeyInfo whose subject equals a trusted certificate's: what an SP
/// that "checks the name" instead of pinning the key would trust.
fn key_info_certs_like(sig: Node<'_, '_>, trusted_certs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let subject = |der: &[u8]| {
        x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, c)| c.subject().as_raw().to_vec())
    };
    let trusted: Vec<Vec<u8>> = trusted_certs.iter().filter_map(|c| subject(c)).collect();
    sig.descendants()
        .filter(|n| {
            n.tag_name().namespace() == Some(NS_DS) && n.tag_name().name() == "X509Certificate"
        })
        .filter_map(|n| base64_of(Some(n)))
        .filter(|der| subject(der).is_some_and(|s| trusted.contains(&s)))
        .collect()
}

/// Signature wrapping's victim: verifies "the signature in `scope`" the naive way. The
/// `ds:Signature` directly under `scope` is taken, else the first one anywhere below it; its
/// Reference is resolved to the *last* element below `scope` with that ID (a hash map filled in
/// document order); and nothing ties the verified element to the one the caller reads (SAML
/// Raider XSW1–XSW8).
pub fn verify_detached(scope: Node<'_, '_>, trusted_certs: &[Vec<u8>]) -> Result<(), SamlError> {
    let bad = |why: &str| SamlError::Signature(format!("{}: {why}", scope.tag_name().name()));
    let is_sig =
        |n: &Node| n.tag_name().namespace() == Some(NS_DS) && n.tag_name().name() == "Signature";
    // Where a signature usually sits, else wherever one is found.
    let sig = scope
        .children()
        .find(is_sig)
        .or_else(|| scope.descendants().find(is_sig))
        .ok_or_else(|| bad("no Signature"))?;
    let uri = ds_child(sig, "SignedInfo")
        .and_then(|si| ds_child(si, "Reference"))
        .and_then(|r| r.attribute("URI"))
        .ok_or_else(|| bad("no Reference"))?;
    let id = uri
        .strip_prefix('#')
        .ok_or_else(|| bad("Reference is not local"))?;
    let target = scope
        .descendants()
        .rfind(|n| n.attribute("ID") == Some(id))
        .ok_or_else(|| bad("Reference points at nothing"))?;
    let si = ds_child(sig, "SignedInfo").ok_or_else(|| bad("no SignedInfo"))?;
    let reference = ds_child(si, "Reference").ok_or_else(|| bad("no Reference"))?;
    let expected = base64_of(ds_child(reference, "DigestValue"))
        .ok_or_else(|| bad("DigestValue is not base64"))?;
    let exclude = target
        .descendants()
        .any(|n| n.id() == sig.id())
        .then(|| sig.id());
    let actual = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        c14n::exclusive(target, exclude).as_bytes(),
    );
    if actual.as_ref() != expected.as_slice() {
        return Err(bad("digest mismatch"));
    }
    let sig_value = base64_of(ds_child(sig, "SignatureValue"))
        .ok_or_else(|| bad("SignatureValue is not base64"))?;
    let signed = c14n::exclusive(si, None);
    let verified = trusted_certs
        .iter()
        .filter_map(|c| rsa_public_key(c))
        .any(|public| {
            crate::census::saml_verification();
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
                .verify(signed.as_bytes(), &sig_value)
                .is_ok()
        });
    if verified {
        Ok(())
    } else {
        Err(bad("signature does not verify"))
    }
}

/// The PKCS#1 RSAPublicKey inside a certificate's SubjectPublicKeyInfo.
pub fn rsa_public_key(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// The whole SubjectPublicKeyInfo of a certificate (for RSA-OAEP).
pub fn spki(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.public_key().raw.to_vec())
}
