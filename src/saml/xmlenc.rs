//! XML Encryption of the `EncryptedID` that carries the BSN: AES-256-CBC content encryption,
//! RSA-OAEP (MGF1-SHA1, as `rsa-oaep-mgf1p` defines) key transport, `EncryptedKey@Recipient` =
//! the DV's entityID.

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::Node;

use super::{NS_DS, NS_XENC, SamlError, dsig};
use crate::pki::SamlKey;

pub const ALG_AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
pub const ALG_RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";

fn crypto(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> SamlError + '_ {
    move |_| SamlError::Crypto(what.to_string())
}

/// Encrypts `plaintext_xml` for `recipient` (entityID) holding `recipient_cert` (DER); returns
/// the `xenc:EncryptedData` element to put inside a `saml:EncryptedID`.
pub fn encrypt(
    plaintext_xml: &str,
    recipient: &str,
    recipient_cert: &[u8],
) -> Result<String, SamlError> {
    let key_bytes = crate::ids::random_bytes(32);
    let iv: [u8; 16] = crate::ids::random_bytes(16)
        .try_into()
        .map_err(|_| SamlError::Crypto("iv".into()))?;
    let key = UnboundCipherKey::new(&AES_256, &key_bytes).map_err(crypto("aes key"))?;
    let enc = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(crypto("aes-cbc"))?;
    let mut data = plaintext_xml.as_bytes().to_vec();
    enc.less_safe_encrypt(&mut data, EncryptionContext::Iv128(iv.into()))
        .map_err(crypto("aes-cbc encrypt"))?;
    let mut content = iv.to_vec();
    content.extend_from_slice(&data);

    let spki = dsig::spki(recipient_cert)
        .ok_or_else(|| SamlError::Crypto("recipient certificate unreadable".into()))?;
    let public = PublicEncryptingKey::from_der(&spki)
        .map_err(|e| SamlError::Crypto(format!("recipient key: {e}")))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(crypto("rsa-oaep key"))?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped = oaep
        .encrypt(&OAEP_SHA1_MGF1SHA1, &key_bytes, &mut wrapped, None)
        .map_err(crypto("rsa-oaep"))?;
    Ok(format!(
        "<xenc:EncryptedData xmlns:xenc=\"{NS_XENC}\" Id=\"{id}\" Type=\"{TYPE_ELEMENT}\">\
         <xenc:EncryptionMethod Algorithm=\"{ALG_AES256_CBC}\"></xenc:EncryptionMethod>\
         <ds:KeyInfo xmlns:ds=\"{NS_DS}\"><xenc:EncryptedKey Recipient=\"{recipient}\">\
         <xenc:EncryptionMethod Algorithm=\"{ALG_RSA_OAEP}\"><ds:DigestMethod Algorithm=\"{sha1}\"></ds:DigestMethod></xenc:EncryptionMethod>\
         <xenc:CipherData><xenc:CipherValue>{wrapped}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>\
         <xenc:CipherData><xenc:CipherValue>{content}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>",
        id = crate::ids::saml_id(),
        sha1 = dsig::ALG_SHA1,
        wrapped = B64.encode(wrapped),
        content = B64.encode(content),
    ))
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

/// Decrypts the `EncryptedID` element with the DV's key; `own_entity` selects the
/// `EncryptedKey` addressed to us. Returns the plaintext XML (a `NameID`).
pub fn decrypt(
    encrypted_id: Node<'_, '_>,
    own_entity: &str,
    key: &SamlKey,
) -> Result<String, SamlError> {
    let data = encrypted_id
        .descendants()
        .find(|n| {
            n.tag_name().namespace() == Some(NS_XENC) && n.tag_name().name() == "EncryptedData"
        })
        .ok_or_else(|| SamlError::Invalid("EncryptedData missing".into()))?;
    let method = xenc(data, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if method != ALG_AES256_CBC {
        return Err(SamlError::Invalid(format!(
            "content encryption {method:?} not accepted"
        )));
    }
    let encrypted_key = encrypted_id
        .descendants()
        .filter(|n| {
            n.tag_name().namespace() == Some(NS_XENC) && n.tag_name().name() == "EncryptedKey"
        })
        .find(|k| k.attribute("Recipient").is_none_or(|r| r == own_entity))
        .ok_or_else(|| SamlError::Invalid(format!("no EncryptedKey for recipient {own_entity}")))?;
    let key_method = xenc(encrypted_key, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if key_method != ALG_RSA_OAEP {
        return Err(SamlError::Invalid(format!(
            "key transport {key_method:?} not accepted"
        )));
    }
    let private = PrivateDecryptingKey::from_pkcs8(&key.pkcs8)
        .map_err(|e| SamlError::Crypto(format!("decryption key: {e}")))?;
    let oaep = OaepPrivateDecryptingKey::new(private).map_err(crypto("rsa-oaep key"))?;
    let wrapped = cipher_value(encrypted_key)?;
    let mut aes_key = vec![0u8; oaep.min_output_size()];
    let aes_key = oaep
        .decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut aes_key, None)
        .map_err(crypto("EncryptedKey does not decrypt with our key"))?;
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
    let cipher = UnboundCipherKey::new(&AES_256, aes_key).map_err(crypto("aes key"))?;
    // XML-Enc pads per ISO 10126 (random filler, last byte the length), not PKCS#7.
    let dec = PaddedBlockDecryptingKey::cbc_iso10126(cipher).map_err(crypto("aes-cbc"))?;
    let plain = dec
        .decrypt(&mut body, DecryptionContext::Iv128(iv.into()))
        .map_err(crypto("aes-cbc decrypt"))?;
    String::from_utf8(plain.to_vec())
        .map_err(|_| SamlError::Invalid("decrypted content is not UTF-8".into()))
}
