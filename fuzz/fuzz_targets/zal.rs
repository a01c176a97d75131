//! The Zorgaanbiederslijst (ZAL, downloaded from MedMij or a file): `lists::parse_zal`, then
//! `Zal::resolve`, as `Matrix::prepare` uses them.
#![no_main]

use koppeltest::matrix::GEGEVENSDIENST;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(zal) = koppeltest::lists::parse_zal(xml) {
        let _ = zal.resolve("huisartsenpraktijk-test@medmij", GEGEVENSDIENST);
        // And every name the list itself holds, so resolution runs on what was parsed.
        for z in &zal.zorgaanbieders {
            let _ = zal.resolve(&z.naam, GEGEVENSDIENST);
        }
    }
});
