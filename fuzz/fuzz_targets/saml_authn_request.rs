//! The AuthnRequest a DV posts to the mock TVS: `AuthnRequest::from_post_binding`, which
//! decodes the `SAMLRequest` field, parses, checks and verifies it.
//!
//! The input is the XML; the target base64-encodes it as the HTTP-POST binding carries it (the
//! base64 step itself is the base64 crate's). A leading `!` passes the rest as the field's raw
//! text instead, so broken base64 and whitespace are reached too.
#![no_main]

use base64::Engine;
use koppeltest::saml::AuthnRequest;
use koppeltest_fuzz::KEYS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let field = match data.strip_prefix(b"!") {
        Some(raw) => match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        },
        None => base64::engine::general_purpose::STANDARD.encode(data),
    };
    // Any issuer is known: the look-up is the TVS's configuration, the message is the input.
    let _ = AuthnRequest::from_post_binding(&field, |_| Some(&KEYS.sp));
});
