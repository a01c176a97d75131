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
        in_response_to: "_req".into(),
        artifact_resolve_id: "_ar".into(),
        loa: Loa::Substantial,
        bsn: "999911533".into(),
        service_uuid: "svc".into(),
        status: LoginStatus::Success,
        issued: now,
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
