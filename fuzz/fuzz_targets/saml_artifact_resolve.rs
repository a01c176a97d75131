//! The ArtifactResolve a DV sends to the mock TVS's artifact resolution service:
//! `saml::parse_artifact_resolve` (parse, SOAP body, issuer, signature) and
//! `saml::unverified_artifact`, which the TVS reads first to file a refusal.
#![no_main]

use koppeltest_fuzz::KEYS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let _ = koppeltest::saml::unverified_artifact(xml);
    let _ = koppeltest::saml::parse_artifact_resolve(xml, |_| Some(&KEYS.sp));
});
