//! The Whitelist (both published shapes): `lists::parse_whitelist`, then `Whitelist::check`, the
//! test the mock PGO makes before it connects anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = koppeltest::lists::parse_whitelist(xml) {
        let _ = list.check("https://dva.example/oauth/token");
        for host in &list.hosts {
            let _ = list.check(&format!("https://{host}/fhir"));
        }
    }
});
