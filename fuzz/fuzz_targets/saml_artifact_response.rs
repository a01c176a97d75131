//! The ArtifactResponse the simulated DVA consumes: `saml::consume_artifact_response`, with its
//! checks and the deliberate weaknesses (quirks) switched on and off by the input's first four
//! bytes. With signature checks off the fuzzer reaches everything behind them (status,
//! conditions, decryption of the BSN), which a signed message hides from it.
#![no_main]

use koppeltest::saml::{AssertionPolicy, Loa, SpLax, consume_artifact_response, dsig, xmlenc};
use koppeltest_fuzz::{KEYS, switches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((on, rest)) = switches(data) else {
        return;
    };
    let Ok(xml) = std::str::from_utf8(rest) else {
        return;
    };
    let certs = [KEYS.tvs.cert_der.clone()];
    let lax = SpLax {
        signature: dsig::SigLax {
            sha1: on.on(0),
            key_info_trusted: on.on(1),
            signed_info_split: on.on(2),
            digest_first_child: on.on(3),
            reference_searched: on.on(4),
            objects_allowed: on.on(5),
        },
        decryption: xmlenc::DecryptLax {
            rsa_1_5: on.on(6),
            recipient_unchecked: on.on(7),
            method_assumed: on.on(8),
        },
        assertion_signature_optional: on.on(9),
        message_signature_optional: on.on(10),
        signature_detached: on.on(11),
        last_assertion_read: on.on(12),
        data_from_descendants: on.on(13),
        doctype_accepted: on.on(14),
        name_id_by_string_search: on.on(15),
        not_before_unchecked: on.on(16),
        expiry_unchecked: on.on(17),
        in_response_to_unchecked: on.on(18),
        unsolicited_accepted: on.on(19),
        recipient_unchecked: on.on(20),
        audience_optional: on.on(21),
        destination_unchecked: on.on(22),
        issuer_unchecked: on.on(23),
        status_unchecked: on.on(24),
    };
    let policy = AssertionPolicy {
        idp_signing_certs: &certs,
        idp_entity: "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9000",
        own_entity: "urn:nl-eid-gdi:1.0:DV:00000009999999999999:entities:9000",
        acs_url: "https://dva.example/acs",
        expected_in_response_to: "_req",
        expected_artifact_resolve_id: "_ar",
        min_loa: Loa::Substantial,
        decryption_key: &KEYS.dv_enc,
        // A fixed clock, so a crash reproduces from its input alone.
        now: time::macros::datetime!(2026-01-01 12:00 UTC),
        check_signatures: !on.on(25),
        check_audience: !on.on(26),
        check_loa: !on.on(27),
        check_subject_confirmation: !on.on(28),
        lax,
    };
    let _ = consume_artifact_response(xml, &policy);
});
