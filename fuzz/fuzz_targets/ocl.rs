//! The OAuth client list (OCL, downloaded from MedMij or a file): `lists::parse_ocl`, then the
//! look-up the simulated DVA makes for a PGO's host name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ocl) = koppeltest::lists::parse_ocl(xml) {
        for c in &ocl.clients {
            assert!(ocl.find(&c.hostname).is_some(), "a parsed client is found");
        }
    }
});
