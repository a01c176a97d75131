//! The mock PGO's browser reading a DVA's or TVS's page: `browser::title` and `browser::forms`,
//! then what the PGO does with the forms (`Form::is_saml_autopost`, `Form::matches` with the
//! matrix's selectors, `Form::submission`).
//!
//! An input with a NUL byte is `selector NUL page`: the selector is matched as a matrix would
//! give it (after `browser::check_selector`, as `Matrix::prepare` does); otherwise the page is
//! matched with the default selectors.
#![no_main]

use koppeltest::pgo::Selectors;
use koppeltest::pgo::browser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = Selectors::default();
    let mut selectors = vec![
        defaults.tvs_login.form.as_str(),
        defaults.consent.form.as_str(),
        defaults.landing.form.as_str(),
    ];
    let html = match text.split_once('\0') {
        Some((selector, html)) => {
            if browser::check_selector(selector).is_ok() {
                selectors = vec![selector];
            }
            html
        }
        None => text,
    };
    let _ = browser::title(html);
    let forms = browser::forms(html);
    for form in &forms {
        let _ = form.is_saml_autopost();
        for selector in &selectors {
            if form.matches(selector) {
                let fields = form.submission(&[("bsn", "999910048".into())], Some("action=login"));
                assert!(
                    fields.len() >= form.fields.len(),
                    "a submission keeps every field of its form"
                );
            }
        }
    }
});
