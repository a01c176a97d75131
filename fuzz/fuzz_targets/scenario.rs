//! Scenario files (`scenarios/*.toml`, or a user's `--scenarios` folder): syntax, then the
//! semantic checks, through `scenario::parse`, the function `load_dir` calls per file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `load_dir` reads files with `read_to_string`: text that is not UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = koppeltest::scenario::parse(Path::new("fuzz.toml"), text) {
        // What the runner asks of every parsed step and check.
        for step in &scenario.steps {
            let _ = (step.id(), step.action());
        }
        for check in &scenario.checks {
            let _ = (check.kind(), check.step(), check.control());
            let _ = koppeltest::checks::credited(check, &scenario);
        }
    }
});
