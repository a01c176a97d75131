//! SAML metadata (an external DVA's SP metadata file named in the matrix):
//! `saml::parse_metadata`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let _ = koppeltest::saml::parse_metadata(xml);
});
