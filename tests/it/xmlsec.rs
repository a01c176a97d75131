//! Interoperability of koppeltest's SAML layer with an independent implementation: Debian's
//! `xmlsec1` (libxmlsec1, which most DVAs' SAML stacks build on) must verify what koppeltest
//! signs and decrypt what it encrypts, and koppeltest must verify what `xmlsec1` signs.
//! `.ci/run` installs `xmlsec1`; without it these tests fail with a message saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use koppeltest::pki::Pki;
use koppeltest::saml::{self, AssertionSpec, AuthnRequest, Loa, LoginStatus};

use crate::helpers::temp_dir;

struct Keys {
    dir: PathBuf,
    pki: Pki,
}

impl Keys {
    fn new(tag: &str) -> Keys {
        let dir = temp_dir(tag);
        let pki = Pki::generate().unwrap();
        pki.write(&dir, &[], &[], &["signer".into(), "recipient".into()])
            .unwrap();
        Keys { dir, pki }
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join("saml").join(format!("{name}.pem"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join("saml").join(format!("{name}.key.pem"))
    }
}

fn xmlsec1(args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new("xmlsec1").args(args).arg(file).output().unwrap_or_else(|e| {
        panic!("cannot run xmlsec1 ({e}); install it with `apt-get install -y xmlsec1` (.ci/run does)")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn verify_with_xmlsec(keys: &Keys, xml: &str, id_attr: &str, name: &str) -> (bool, String) {
    let file = keys.dir.join(name);
    std::fs::write(&file, xml).unwrap();
    let cert = keys.cert("signer");
    xmlsec1(
        &[
            "--verify",
            "--pubkey-cert-pem",
            cert.to_str().unwrap(),
            "--id-attr:ID",
            id_attr,
        ],
        &file,
    )
}

fn spec(keys: &Keys) -> AssertionSpec {
    let now = time::OffsetDateTime::now_utc();
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
        encryption_cert: keys.pki.saml_key("recipient").unwrap().cert_der.clone(),
    }
}

#[test]
fn xmlsec1_verifies_what_koppeltest_signs() {
    let keys = Keys::new("xmlsec-verify");
    let signer = keys.pki.saml_key("signer").unwrap();
    let request = AuthnRequest {
        id: koppeltest::ids::saml_id(),
        issuer: "urn:dv".into(),
        destination: "https://tvs/sso".into(),
        acs_index: 0,
        requested_loa: Loa::Substantial,
    };
    let posted = request.to_post_binding(&signer).unwrap();
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(posted)
            .unwrap(),
    )
    .unwrap();
    let (ok, out) = verify_with_xmlsec(
        &keys,
        &xml,
        "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
        "authn.xml",
    );
    assert!(
        ok,
        "xmlsec1 refused koppeltest's AuthnRequest signature: {out}"
    );

    let response = saml::artifact_response(&spec(&keys), &signer, |a| a).unwrap();
    let (ok, out) = verify_with_xmlsec(
        &keys,
        &response,
        "urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResponse",
        "response.xml",
    );
    assert!(
        ok,
        "xmlsec1 refused koppeltest's ArtifactResponse signature: {out}"
    );

    // The inner Assertion on its own (exclusive c14n makes it independent of its context).
    let start = response.find("<saml:Assertion ").unwrap();
    let end = response.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let (ok, out) = verify_with_xmlsec(
        &keys,
        &response[start..end],
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        "assertion.xml",
    );
    assert!(
        ok,
        "xmlsec1 refused koppeltest's Assertion signature: {out}"
    );

    // And the negative: a tampered Assertion must fail for xmlsec1 too.
    let tampered = response[start..end].replace("substantial", "high");
    let (ok, _) = verify_with_xmlsec(
        &keys,
        &tampered,
        "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        "tampered.xml",
    );
    assert!(
        !ok,
        "xmlsec1 accepted a tampered Assertion, so this test proves nothing"
    );
    std::fs::remove_dir_all(&keys.dir).ok();
}

#[test]
fn xmlsec1_decrypts_the_bsn_koppeltest_encrypts() {
    let keys = Keys::new("xmlsec-decrypt");
    let recipient = keys.pki.saml_key("recipient").unwrap();
    let name_id = format!(
        "<saml:NameID xmlns:saml=\"{}\" NameQualifier=\"{}\">999911533</saml:NameID>",
        saml::NS_SAML,
        saml::NAME_QUALIFIER_LEGACY_BSN
    );
    let encrypted = saml::xmlenc::encrypt(&name_id, "urn:dv", &recipient.cert_der).unwrap();
    let file = keys.dir.join("encrypted.xml");
    std::fs::write(&file, &encrypted).unwrap();
    let key = keys.key("recipient");
    let (ok, out) = xmlsec1(
        &["--decrypt", "--privkey-pem", key.to_str().unwrap()],
        &file,
    );
    assert!(
        ok,
        "xmlsec1 could not decrypt koppeltest's EncryptedData: {out}"
    );
    assert!(
        out.contains("999911533"),
        "xmlsec1 decrypted something else: {out}"
    );
    std::fs::remove_dir_all(&keys.dir).ok();
}

#[test]
fn koppeltest_verifies_what_xmlsec1_signs() {
    let keys = Keys::new("xmlsec-sign");
    let template = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"{p}\" xmlns:saml=\"{a}\" ID=\"_xmlsec1signed\" Version=\"2.0\" IssueInstant=\"2026-01-01T00:00:00Z\">\
         <saml:Issuer>urn:dv</saml:Issuer>\
         <ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <ds:Reference URI=\"#_xmlsec1signed\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/></ds:Reference>\
         </ds:SignedInfo><ds:SignatureValue/></ds:Signature>\
         <samlp:NameIDPolicy AllowCreate=\"true\"/></samlp:AuthnRequest>",
        p = saml::NS_SAMLP,
        a = saml::NS_SAML
    );
    let file = keys.dir.join("template.xml");
    std::fs::write(&file, template).unwrap();
    let key = keys.key("signer");
    let (ok, signed) = xmlsec1(
        &[
            "--sign",
            "--privkey-pem",
            key.to_str().unwrap(),
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
        ],
        &file,
    );
    assert!(ok, "xmlsec1 could not sign: {signed}");
    let signed = &signed[signed
        .find("<?xml")
        .or_else(|| signed.find("<samlp"))
        .unwrap()..];
    let signed = signed.trim_end().trim_end_matches(|c: char| c != '>');
    let doc = roxmltree::Document::parse(signed).expect("xmlsec1 output parses");
    let cert = keys.pki.saml_key("signer").unwrap().cert_der.clone();
    saml::dsig::verify(doc.root_element(), std::slice::from_ref(&cert))
        .expect("koppeltest verifies xmlsec1's signature");
    let tampered = signed.replace("urn:dv", "urn:evil");
    let doc = roxmltree::Document::parse(&tampered).unwrap();
    assert!(
        saml::dsig::verify(doc.root_element(), &[cert]).is_err(),
        "a tampered document must not verify"
    );
    std::fs::remove_dir_all(&keys.dir).ok();
}

/// The signature-wrapping stimuli are what they claim: in every XSW variant (and the duplicate-ID
/// one) the original signature still verifies, by `xmlsec1`, for the original ID: the Assertion's
/// for XSW3–XSW8, the ArtifactResponse's for XSW1/XSW2. A DV that accepts them was fooled by
/// placement, not by a broken signature. `xmlsec1` refuses a document with duplicate IDs outright
/// (as a DV should), so for XSW7, XSW8 and duplicate IDs the evil element's ID (the first one
/// in document order) is renamed before verifying; nothing else changes. For XSW1, XSW6 and
/// XSW8 the original sits inside the Signature (in a `ds:Object`), where the enveloped-signature
/// transform, read as the standard reads it, leaves nothing to digest: xmlsec1 rightly fails
/// them as they stand. There the proof reassembles the original from the stimulus's own parts
/// (the original out of the `ds:Object`, the kept Signature without it, put back after the
/// original's Issuer) and xmlsec1 verifies that. A verifier that excludes only the signed
/// element's own Signature, as vulnerable ones do, accepts the stimulus itself (the SP tests in
/// `saml::forge` show it). The NameID-split stimuli verify as they stand.
#[test]
fn xmlsec1_verifies_the_original_signature_inside_every_wrapping_stimulus() {
    use koppeltest::saml::forge::{self, Extras, Fault};
    let keys = Keys::new("xmlsec-xsw");
    let signer = keys.pki.saml_key("signer").unwrap();
    let assertion = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
    let message = "urn:oasis:names:tc:SAML:2.0:protocol:ArtifactResponse";
    let mut failures = Vec::new();
    for (fault, element) in [
        (Fault::Xsw1, message),
        (Fault::Xsw2, message),
        (Fault::Xsw3, assertion),
        (Fault::Xsw4, assertion),
        (Fault::Xsw5, assertion),
        (Fault::Xsw6, assertion),
        (Fault::Xsw7, assertion),
        (Fault::Xsw8, assertion),
        (Fault::DuplicateIds, assertion),
        (Fault::NameIdComment, assertion),
        (Fault::NameIdProcessingInstruction, assertion),
        (Fault::NameIdCdata, assertion),
    ] {
        let xml = forge::artifact_response(&spec(&keys), &signer, Some(fault), Extras::default())
            .unwrap();
        // The original ID: the one the signature of that element type references.
        let local = element.rsplit(':').next().unwrap();
        let original = original_reference(&xml, local);
        let xpath = format!(
            "//*[local-name()='Signature'][*[local-name()='SignedInfo']/*[local-name()='Reference'][@URI='#{original}']]"
        );
        let xml = if matches!(fault, Fault::Xsw1 | Fault::Xsw6 | Fault::Xsw8) {
            reassemble(&xml, &original)
        } else {
            xml
        };
        let xml = if matches!(fault, Fault::Xsw7 | Fault::DuplicateIds) {
            let duplicated = format!("ID=\"{original}\"");
            assert_eq!(xml.matches(&duplicated).count(), 2, "{}", fault.name());
            xml.replacen(&duplicated, "ID=\"_evil\"", 1)
        } else {
            xml
        };
        let file = keys.dir.join(format!("{}.xml", fault.name()));
        std::fs::write(&file, &xml).unwrap();
        let cert = keys.cert("signer");
        let args = [
            "--verify",
            "--pubkey-cert-pem",
            cert.to_str().unwrap(),
            "--id-attr:ID",
            element,
            "--node-xpath",
            &xpath,
        ];
        let (ok, out) = xmlsec1(&args, &file);
        if !ok {
            failures.push(format!("{}: {out}", fault.name()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The ID a `ds:Reference` points at from the Signature of the first element named `local`
/// that has one directly (where the signer put it).
fn original_reference(xml: &str, local: &str) -> String {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).unwrap();
    let mut refs = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "Reference");
    let pick = refs
        .find(|r| {
            // Reference, SignedInfo, Signature, the signed element.
            r.ancestors()
                .nth(3)
                .is_some_and(|signed| signed.tag_name().name() == local)
        })
        .unwrap();
    pick.attribute("URI")
        .unwrap()
        .trim_start_matches('#')
        .to_string()
}

/// The original element carried in a `ds:Object` of the Signature that references
/// `original`, with that Signature (minus the Object) put back after its Issuer.
fn reassemble(xml: &str, original: &str) -> String {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let sig = doc
        .descendants()
        .find(|n| {
            n.tag_name().name() == "Signature"
                && n.descendants().any(|r| {
                    r.tag_name().name() == "Reference"
                        && r.attribute("URI") == Some(&format!("#{original}"))
                })
        })
        .unwrap();
    let object = sig
        .children()
        .find(|c| c.tag_name().name() == "Object")
        .unwrap();
    let copy = object.first_element_child().unwrap();
    assert_eq!(copy.attribute("ID"), Some(original));
    let sig_text = format!(
        "{}{}",
        &xml[sig.range().start..object.range().start],
        &xml[object.range().end..sig.range().end]
    );
    let copy_text = &xml[copy.range()];
    let at = copy_text.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
    format!("{}{sig_text}{}", &copy_text[..at], &copy_text[at..])
}
