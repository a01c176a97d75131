//! Exclusive canonicalization and the signature checks around it: any document the strict
//! SAML parser (`saml::parse`) accepts is canonicalized at every element, with and without an
//! excluded child (the canonical form must parse again), and every element goes through `dsig::verify_with` (weaknesses switched by
//! the input's first four bytes) and `dsig::verify_detached`, which canonicalize what a
//! Reference points at.
#![no_main]

use koppeltest::saml::{c14n, dsig};
use koppeltest_fuzz::{KEYS, switches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((on, rest)) = switches(data) else {
        return;
    };
    let Ok(xml) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(doc) = koppeltest::saml::parse(xml) else {
        return;
    };
    let lax = dsig::SigLax {
        sha1: on.on(0),
        key_info_trusted: on.on(1),
        signed_info_split: on.on(2),
        digest_first_child: on.on(3),
        reference_searched: on.on(4),
        objects_allowed: on.on(5),
    };
    let certs = [KEYS.tvs.cert_der.clone()];
    for element in doc.descendants().filter(|n| n.is_element()) {
        let whole = c14n::exclusive(element, None);
        // The canonical form of a subtree is itself a well-formed document: every prefix it
        // uses is declared in it (a signature over anything else could not be checked by a
        // second implementation).
        if let Err(e) = koppeltest::saml::parse(&whole) {
            panic!("canonical form does not parse ({e}): {whole}");
        }
        if let Some(first) = element.first_element_child() {
            let _ = c14n::exclusive(element, Some(first.id()));
        }
        let _ = dsig::is_signed(element);
        let _ = dsig::verify_with(element, &certs, lax);
        let _ = dsig::verify_detached(element, &certs);
    }
});
