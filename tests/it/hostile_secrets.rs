//! Hostile DVA, secrets: a DVA that echoes the access token, a private key or a BSN in an error
//! page, a header or a JSON field. Each may reach the report only as a label; the harness
//! searches every file of the run folder for the planted value (and, in every case, for the
//! baseline's access token). The error answers are themselves judged: `fail`, never `pass`.

use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, Request, ResponseTemplate};

use crate::hostile::{ACCESS_TOKEN, Case, close, fhir_json, html, shared};

/// A test BSN (9999xxxxx, valid 11-check) that no fixture and no matrix of these runs holds.
const PLANTED_BSN: &str = "999940041";

fn resource(t: ResponseTemplate) -> Mock {
    Mock::given(method("GET"))
        .and(path_regex("^/fhir/"))
        .respond_with(close(t))
}

fn json_status(status: u16, json: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(json.as_bytes().to_vec(), "application/fhir+json")
}

/// The bearer token of a request, as the DVA received it.
fn bearer(req: &Request) -> String {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// A private key in PEM, from the test PKI's own files (a CA key the run never reads), and one
/// line of its base64 as the value to search for.
fn private_key() -> (String, String) {
    let pem = std::fs::read_to_string(shared().dir.join("front-ca.key.pem")).expect("a key");
    let line = pem
        .lines()
        .find(|l| l.len() > 40 && !l.starts_with("-----"))
        .expect("a base64 line")
        .to_string();
    (pem, line)
}

/// The access token echoed in an HTML error page.
#[test]
fn the_access_token_echoed_in_an_error_page() {
    Case::new("secret-token-in-page")
        .mock(
            Mock::given(method("GET"))
                .and(path_regex("^/fhir/"))
                .respond_with(|req: &Request| {
                    close(html(format!(
                        "<!doctype html><title>Fout</title><p>Ongeldig token: {}</p>",
                        bearer(req)
                    )))
                }),
        )
        .expect("patient", &["not json", "http 200"])
        .may_fail()
        .secret(ACCESS_TOKEN)
        .run();
}

/// The access token echoed in a response header.
#[test]
fn the_access_token_echoed_in_a_header() {
    Case::new("secret-token-in-header")
        .mock(
            Mock::given(method("GET"))
                .and(path_regex("^/fhir/"))
                .respond_with(|req: &Request| {
                    close(ResponseTemplate::new(401))
                        .insert_header("x-debug-token", bearer(req).as_str())
                        .insert_header(
                            "www-authenticate",
                            format!("Bearer error=\"invalid_token\", token=\"{}\"", bearer(req))
                                .as_str(),
                        )
                }),
        )
        .expect("patient", &["http 401"])
        .may_fail()
        .secret(ACCESS_TOKEN)
        .run();
}

/// The access token echoed in a JSON field of an OperationOutcome.
#[test]
fn the_access_token_echoed_in_a_json_field() {
    Case::new("secret-token-in-json")
        .mock(
            Mock::given(method("GET"))
                .and(path_regex("^/fhir/"))
                .respond_with(|req: &Request| {
                    close(json_status(
                        403,
                        &format!(
                            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"security","diagnostics":"token {} rejected"}}]}}"#,
                            bearer(req)
                        ),
                    ))
                }),
        )
        .expect("patient", &["http 403"])
        .may_fail()
        .secret(ACCESS_TOKEN)
        .run();
}

/// A private key in an error page.
#[test]
fn a_private_key_in_an_error_page() {
    let (pem, line) = private_key();
    Case::new("secret-key-in-page")
        .mock(resource(ResponseTemplate::new(500).set_body_raw(
            format!("<!doctype html><title>Fout</title><pre>{pem}</pre>"),
            "text/html",
        )))
        .expect("patient", &["http 500"])
        .may_fail()
        .secret(&line)
        .run();
}

/// A private key in a response header (one line, as a header must be).
#[test]
fn a_private_key_in_a_header() {
    let (pem, line) = private_key();
    let one_line = pem.lines().collect::<Vec<_>>().join("");
    Case::new("secret-key-in-header")
        .mock(resource(
            fhir_json(r#"{"resourceType":"Bundle","type":"searchset","total":0,"entry":[]}"#)
                .insert_header("x-debug-key", one_line.as_str()),
        ))
        .expect("patient", &["no patient in the result"])
        .may_fail()
        .secret(&line)
        .run();
}

/// A BSN in a response header.
#[test]
fn a_bsn_in_a_header() {
    Case::new("secret-bsn-in-header")
        .mock(resource(
            fhir_json(r#"{"resourceType":"Bundle","type":"searchset","total":0,"entry":[]}"#)
                .insert_header("x-patient-bsn", PLANTED_BSN),
        ))
        .expect("patient", &["no patient in the result"])
        .may_fail()
        .secret(PLANTED_BSN)
        .run();
}

/// A BSN in a JSON field, and in an error page.
#[test]
fn a_bsn_in_a_json_field_and_an_error_page() {
    Case::new("secret-bsn-in-json")
        .mock(resource(json_status(
            404,
            &format!(
                r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"not-found","diagnostics":"no record for BSN {PLANTED_BSN}"}}],"text":{{"div":"<div>BSN {PLANTED_BSN}</div>"}}}}"#
            ),
        )))
        .expect("patient", &["http 404"])
        .may_fail()
        .secret(PLANTED_BSN)
        .run();
}
