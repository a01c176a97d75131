//! Hostile DVA, JSON and FHIR on the resource endpoint: nesting without end, duplicate keys,
//! bytes that are no UTF-8, numbers no parser holds, Bundles whose `next` links loop or leave the
//! host, a million entries and the wrong resource type. Where the answer is itself a MUST
//! violation that `fhir-searchset` judges (no JSON, no searchset Bundle), the scenario ends
//! `fail`: the verdict on the DVA, with the reason; never `pass`, never a hang.

use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::hostile::{Case, close, fhir_json};

fn resource(t: ResponseTemplate) -> Mock {
    Mock::given(method("GET"))
        .and(path_regex("^/fhir/"))
        .respond_with(close(t))
}

const BUNDLE_HEAD: &str = r#"{"resourceType":"Bundle","type":"searchset","#;

/// JSON nested 100,000 deep: the parser's depth limit refuses it (no stack overflow, in the
/// judge or in the snapshot normaliser). `fail`: the answer is not JSON.
#[test]
fn json_nested_a_hundred_thousand_deep() {
    let body = format!(
        "{BUNDLE_HEAD}\"entry\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    Case::new("json-deep")
        .mock(resource(fhir_json(&body)))
        .expect("patient", &["not json"])
        .may_fail()
        .run();
}

/// Duplicate keys: `resourceType` twice, the second naming another resource. RFC 8259 leaves
/// the meaning open; the parser keeps the last, and the Bundle is judged as the
/// OperationOutcome it then claims to be: `fail`, never `pass`.
#[test]
fn json_with_duplicate_keys() {
    let body = r#"{"resourceType":"Bundle","type":"searchset","total":0,"entry":[],"resourceType":"OperationOutcome"}"#;
    Case::new("json-duplicate-keys")
        .mock(resource(fhir_json(body)))
        .expect(
            "patient",
            &["expected a searchset bundle, got \"operationoutcome\""],
        )
        .may_fail()
        .run();
}

/// Bytes that are no UTF-8 inside a JSON string: not read lossily into something that passes.
#[test]
fn json_with_invalid_utf8() {
    let mut body = format!("{BUNDLE_HEAD}\"total\":0,\"entry\":[],\"id\":\"").into_bytes();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(b"\"}");
    Case::new("json-invalid-utf8")
        .mock(resource(
            ResponseTemplate::new(200).set_body_raw(body, "application/fhir+json"),
        ))
        .expect("patient", &["not valid utf-8"])
        .run();
}

/// A number no f64 holds (`1e400`) as Bundle.total. `fail`: the answer is not JSON serde_json
/// can hold, so the judge cannot read it as a Bundle.
#[test]
fn json_with_a_number_that_does_not_fit() {
    let body = format!("{BUNDLE_HEAD}\"total\":1e400,\"entry\":[]}}");
    Case::new("json-huge-number")
        .mock(resource(fhir_json(&body)))
        .expect("patient", &["not json"])
        .may_fail()
        .run();
}

/// A Bundle whose `next` link points at itself: paging stops on the repeat. `fail`: the
/// searchset check names the loop as a paging defect.
#[test]
fn a_bundle_whose_next_links_loop() {
    let body = format!(
        "{BUNDLE_HEAD}\"total\":0,\"entry\":[],\"link\":[{{\"relation\":\"next\",\"url\":\"https://api.conform.dva.koppeltest.test/fhir/Patient?page=1\"}}]}}"
    );
    let page2 = format!(
        "{BUNDLE_HEAD}\"total\":0,\"entry\":[],\"link\":[{{\"relation\":\"next\",\"url\":\"https://api.conform.dva.koppeltest.test/fhir/Patient?page=1\"}}]}}"
    );
    Case::new("next-loop")
        .mock(resource(fhir_json(&body)))
        .mock(
            Mock::given(method("GET"))
                .and(path_regex("^/fhir/Patient$"))
                .and(wiremock::matchers::query_param("page", "1"))
                .respond_with(close(fhir_json(&page2)))
                .with_priority(1),
        )
        .expect("patient", &["repeats an earlier page"])
        .may_fail()
        .run();
}

/// A Bundle whose `next` link points off the resource host: never followed. `fail`, as above.
#[test]
fn a_bundle_whose_next_link_leaves_the_host() {
    let body = format!(
        "{BUNDLE_HEAD}\"total\":0,\"entry\":[],\"link\":[{{\"relation\":\"next\",\"url\":\"https://evil.koppeltest.test/fhir/Patient?page=2\"}}]}}"
    );
    Case::new("next-off-host")
        .mock(resource(fhir_json(&body)))
        .expect("patient", &["leaves the resource endpoint"])
        .may_fail()
        .run();
}

/// A million (empty) entries in one page, 3 MB of JSON: judged within the memory bound and the
/// step bound, the check messages listing at most twenty problems. `fail`: an unpaged result.
#[test]
fn a_million_entries() {
    let mut body = format!("{BUNDLE_HEAD}\"total\":1000000,\"entry\":[");
    body.push_str(&vec!["{}"; 1_000_000].join(","));
    body.push_str("]}");
    Case::new("million-entries")
        .mock(resource(fhir_json(&body)))
        .expect("patient", &["a page holds 1000000 matches"])
        .may_fail()
        .run();
}

/// A wrong `resourceType`: a Patient where a searchset Bundle must be. `fail`: MUST violation.
#[test]
fn a_wrong_resource_type() {
    Case::new("wrong-resource-type")
        .mock(resource(fhir_json(
            r#"{"resourceType":"Patient","id":"p1","meta":{"profile":["http://fhir.nl/fhir/StructureDefinition/nl-core-patient"]}}"#,
        )))
        .expect("patient", &["bundle", "searchset", "resourcetype"])
        .may_fail()
        .run();
}
