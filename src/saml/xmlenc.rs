//! XML Encryption of the `EncryptedID` that carries the BSN: AES-256-CBC content encryption,
//! RSA-OAEP (MGF1-SHA1, as `rsa-oaep-mgf1p` defines) key transport, `EncryptedKey@Recipient` =
//! the DV's entityID.

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, EncryptingKey, EncryptionContext, PaddedBlockDecryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::Node;

use super::{NS_DS, NS_XENC, SamlError, dsig};
use crate::pki::SamlKey;

pub const ALG_AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
pub const ALG_RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// RSA PKCS#1 v1.5 key transport: open to Bleichenbacher's attack, refused by ST-SAML.
pub const ALG_RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";

fn crypto(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> SamlError + '_ {
    move |_| SamlError::Crypto(what.to_string())
}

/// How an `EncryptedID` is made: conformant by default; the mock TVS's EncryptedID faults change
/// one thing each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptOptions {
    /// RSA PKCS#1 v1.5 key transport instead of RSA-OAEP.
    pub rsa_1_5: bool,
    /// `EncryptedKey@Recipient`; `None` leaves the attribute out.
    pub recipient: Option<String>,
    /// Leave out the content's `EncryptionMethod`.
    pub no_method: bool,
    /// What the ciphertext holds.
    pub content: Content,
}

/// The plaintext behind the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The XML, padded as XML-Enc says.
    Proper,
    /// Random bytes with valid padding: decrypts, but to no XML.
    Corrupted,
    /// The XML with an invalid final padding byte: does not decrypt.
    BadPadding,
}

impl EncryptOptions {
    pub fn for_recipient(recipient: &str) -> EncryptOptions {
        EncryptOptions {
            rsa_1_5: false,
            recipient: Some(recipient.to_string()),
            no_method: false,
            content: Content::Proper,
        }
    }
}

/// Encrypts `plaintext_xml` for `recipient` (entityID) holding `recipient_cert` (DER); returns
/// the `xenc:EncryptedData` element to put inside a `saml:EncryptedID`.
pub fn encrypt(
    plaintext_xml: &str,
    recipient: &str,
    recipient_cert: &[u8],
) -> Result<String, SamlError> {
    encrypt_with(
        plaintext_xml,
        recipient_cert,
        &EncryptOptions::for_recipient(recipient),
    )
}

/// [`encrypt`] shaped by `options`.
pub fn encrypt_with(
    plaintext_xml: &str,
    recipient_cert: &[u8],
    options: &EncryptOptions,
) -> Result<String, SamlError> {
    let key_bytes = crate::ids::random_bytes(32);
    let iv: [u8; 16] = crate::ids::random_bytes(16)
        .try_into()
        .map_err(|_| SamlError::Crypto("iv".into()))?;
    // Padding per XML-Enc (ISO 10126: filler, then the pad length in the last byte).
    let mut data = match options.content {
        Content::Corrupted => crate::ids::random_bytes(plaintext_xml.len().max(32)),
        Content::Proper | Content::BadPadding => plaintext_xml.as_bytes().to_vec(),
    };
    let pad = 16 - data.len() % 16;
    data.extend(std::iter::repeat_n(0u8, pad - 1));
    data.push(match options.content {
        Content::BadPadding => 0,
        _ => pad as u8,
    });
    let key = UnboundCipherKey::new(&AES_256, &key_bytes).map_err(crypto("aes key"))?;
    let enc = EncryptingKey::cbc(key).map_err(crypto("aes-cbc"))?;
    enc.less_safe_encrypt(&mut data, EncryptionContext::Iv128(iv.into()))
        .map_err(crypto("aes-cbc encrypt"))?;
    let mut content = iv.to_vec();
    content.extend_from_slice(&data);

    let spki = dsig::spki(recipient_cert)
        .ok_or_else(|| SamlError::Crypto("recipient certificate unreadable".into()))?;
    let public = PublicEncryptingKey::from_der(&spki)
        .map_err(|e| SamlError::Crypto(format!("recipient key: {e}")))?;
    crate::census::key_encryption();
    let (wrapped, transport) = if options.rsa_1_5 {
        let pkcs1 = Pkcs1PublicEncryptingKey::new(public).map_err(crypto("rsa-1_5 key"))?;
        let mut out = vec![0u8; pkcs1.ciphertext_size()];
        let wrapped = pkcs1
            .encrypt(&key_bytes, &mut out)
            .map_err(crypto("rsa-1_5"))?
            .to_vec();
        (
            wrapped,
            format!("<xenc:EncryptionMethod Algorithm=\"{ALG_RSA_1_5}\"></xenc:EncryptionMethod>"),
        )
    } else {
        let oaep = OaepPublicEncryptingKey::new(public).map_err(crypto("rsa-oaep key"))?;
        let mut out = vec![0u8; oaep.ciphertext_size()];
        let wrapped = oaep
            .encrypt(&OAEP_SHA1_MGF1SHA1, &key_bytes, &mut out, None)
            .map_err(crypto("rsa-oaep"))?
            .to_vec();
        (
            wrapped,
            format!(
                "<xenc:EncryptionMethod Algorithm=\"{ALG_RSA_OAEP}\"><ds:DigestMethod Algorithm=\"{sha1}\"></ds:DigestMethod></xenc:EncryptionMethod>",
                sha1 = dsig::ALG_SHA1
            ),
        )
    };
    let recipient = options
        .recipient
        .as_ref()
        .map(|r| format!(" Recipient=\"{}\"", super::escape(r)))
        .unwrap_or_default();
    let method = if options.no_method {
        String::new()
    } else {
        format!("<xenc:EncryptionMethod Algorithm=\"{ALG_AES256_CBC}\"></xenc:EncryptionMethod>")
    };
    Ok(format!(
        "<xenc:EncryptedData xmlns:xenc=\"{NS_XENC}\" Id=\"{id}\" Type=\"{TYPE_ELEMENT}\">{method}\
         <ds:KeyInfo xmlns:ds=\"{NS_DS}\"><xenc:EncryptedKey{recipient}>{transport}\
         <xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>\
         <xenc:CipherData><xenc:CipherValue>{content}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>",
        id = crate::ids::saml_id(),
        wrapped = B64.encode(wrapped),
        content = B64.encode(content),
    ))
}

/// Deliberate weaknesses of decryption, for the simulated DVA's quirks; all off is strict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecryptLax {
    /// RSA PKCS#1 v1.5 key transport is accepted.
    pub rsa_1_5: bool,
    /// Any `EncryptedKey` is used, whoever its `Recipient` is, or none.
    pub recipient_unchecked: bool,
    /// A missing content `EncryptionMethod` is taken as AES-256-CBC.
    pub method_assumed: bool,
}

fn xenc<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(NS_XENC) && c.tag_name().name() == local
    })
}

fn cipher_value(node: Node<'_, '_>) -> Result<Vec<u8>, SamlError> {
    let text: String = xenc(node, "CipherData")
        .and_then(|d| xenc(d, "CipherValue"))
        .and_then(|v| v.text())
        .ok_or_else(|| SamlError::Invalid("CipherValue missing".into()))?
        .split_whitespace()
        .collect();
    B64.decode(text)
        .map_err(|_| SamlError::Invalid("CipherValue is not base64".into()))
}

/// Decrypts the `EncryptedID` element with the DV's key, with the weaknesses `lax` switches on
/// (none: strict); `own_entity` selects the `EncryptedKey` addressed to us. Returns the
/// plaintext XML (a `NameID`).
pub fn decrypt_with(
    encrypted_id: Node<'_, '_>,
    own_entity: &str,
    key: &SamlKey,
    lax: DecryptLax,
) -> Result<String, SamlError> {
    let data = encrypted_id
        .descendants()
        .find(|n| {
            n.tag_name().namespace() == Some(NS_XENC) && n.tag_name().name() == "EncryptedData"
        })
        .ok_or_else(|| SamlError::Invalid("EncryptedData missing".into()))?;
    let method = xenc(data, "EncryptionMethod").and_then(|m| m.attribute("Algorithm"));
    match method {
        Some(ALG_AES256_CBC) => {}
        None if lax.method_assumed => {}
        None => {
            return Err(SamlError::Invalid(
                "EncryptedData has no EncryptionMethod".into(),
            ));
        }
        Some(other) => {
            return Err(SamlError::Invalid(format!(
                "content encryption {other:?} not accepted"
            )));
        }
    }
    let encrypted_key = encrypted_id
        .descendants()
        .filter(|n| {
            n.tag_name().namespace() == Some(NS_XENC) && n.tag_name().name() == "EncryptedKey"
        })
        .find(|k| lax.recipient_unchecked || k.attribute("Recipient") == Some(own_entity))
        .ok_or_else(|| SamlError::Invalid(format!("no EncryptedKey for recipient {own_entity}")))?;
    let key_method = xenc(encrypted_key, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    let private = PrivateDecryptingKey::from_pkcs8(&key.pkcs8)
        .map_err(|e| SamlError::Crypto(format!("decryption key: {e}")))?;
    let wrapped = cipher_value(encrypted_key)?;
    let aes_key: Vec<u8> = match key_method {
        ALG_RSA_OAEP => {
            let oaep = OaepPrivateDecryptingKey::new(private).map_err(crypto("rsa-oaep key"))?;
            let mut out = vec![0u8; oaep.min_output_size()];
            crate::census::key_decryption();
            oaep.decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut out, None)
                .map_err(crypto("EncryptedKey does not decrypt with our key"))?
                .to_vec()
        }
        ALG_RSA_1_5 if lax.rsa_1_5 => {
            let pkcs1 = Pkcs1PrivateDecryptingKey::new(private).map_err(crypto("rsa-1_5 key"))?;
            let mut out = vec![0u8; pkcs1.min_output_size()];
            crate::census::key_decryption();
            pkcs1
                .decrypt(&wrapped, &mut out)
                .map_err(crypto("EncryptedKey does not decrypt with our key"))?
                .to_vec()
        }
        other => {
            return Err(SamlError::Invalid(format!(
                "key transport {other:?} not accepted"
            )));
        }
    };
    let content = cipher_value(data)?;
    if content.len() < 32 || content.len() % 16 != 0 {
        return Err(SamlError::Invalid(
            "encrypted content has a bad length".into(),
        ));
    }
    let iv: [u8; 16] = content[..16]
        .try_into()
        .map_err(|_| SamlError::Invalid("iv".into()))?;
    let mut body = content[16..].to_vec();
    let cipher = UnboundCipherKey::new(&AES_256, &aes_key).map_err(crypto("aes key"))?;
    // XML-Enc pads per ISO 10126 (random filler, last byte the length), not PKCS#7.
    let dec = PaddedBlockDecryptingKey::cbc_iso10126(cipher).map_err(crypto("aes-cbc"))?;
    let plain = dec
        .decrypt(&mut body, DecryptionContext::Iv128(iv.into()))
        .map_err(crypto("aes-cbc decrypt: bad padding"))?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| SamlError::Invalid("decrypted content is not UTF-8".into()))
}
