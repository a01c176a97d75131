//! Hostile DVA, HTML pages on the front channel: markup nested without end, a page beyond the
//! body limit, and redirects the browser must not (or cannot) follow. The browser parses pages
//! as HTML5 with scripting off and follows only redirects and forms.

use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::hostile::{Case, close, html};

fn authorize_page(t: ResponseTemplate) -> Mock {
    Mock::given(method("GET"))
        .and(path("/oauth/authorize"))
        .respond_with(close(t))
}

/// Forms nested 10,000 deep (a div around each, an input in each). Every form-owner and
/// ancestor look-up walks the nesting, which made this page cost the browser most of a minute:
/// the browser now reads no page nested deeper than `limits::MAX_HTML_DEPTH`.
#[test]
fn forms_nested_ten_thousand_deep() {
    let mut page = String::from("<!doctype html><title>nest</title>");
    for i in 0..10_000 {
        page.push_str(&format!(
            "<div><form action=\"/f{i}\" method=\"post\"><input name=\"n{i}\" value=\"v\">"
        ));
    }
    Case::new("nested-forms")
        .mock(authorize_page(html(page)))
        .expect("authorize", &["the page nests elements 10004 deep"])
        .run();
}

/// A 50 MB page: over the 16 MiB body limit, refused while reading.
#[test]
fn a_fifty_megabyte_page() {
    let mut page = b"<!doctype html><title>big</title><p>".to_vec();
    page.resize(50_000_000, b'a');
    Case::new("fifty-mb-page")
        .mock(authorize_page(html(page)))
        .expect("authorize", &["larger than the limit"])
        .run();
}

/// A meta-refresh loop: the page refreshes to itself for ever. The browser does not follow
/// meta refresh (nor would a loop end): it stops on the page. Ends `fail` (`code-issued`
/// judges the page the browser stopped on), never `pass`.
#[test]
fn a_meta_refresh_loop() {
    Case::new("meta-refresh-loop")
        .mock(authorize_page(html(
            "<!doctype html><title>wait</title><meta http-equiv=\"refresh\" content=\"0;url=/oauth/authorize\"><p>Even geduld",
        )))
        .expect("authorize", &["the browser stopped on a page"])
        .may_fail()
        .run();
}

/// A script-only redirect (`location.href = …` with no form): nothing here runs scripts, so the
/// browser stops on the page. Ends `fail` like the meta refresh.
#[test]
fn a_script_only_redirect() {
    Case::new("script-redirect")
        .mock(authorize_page(html(
            "<!doctype html><title>go</title><script>window.location.href='https://medmij.pgo-alfa.koppeltest.test/oauth/callback?code=x'</script>",
        )))
        .expect("authorize", &["the browser stopped on a page"])
        .may_fail()
        .run();
}
