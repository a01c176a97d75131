use super::*;

fn back(params: &[(&str, &str)], sent_state: Option<&str>) -> AuthorizeResult {
    AuthorizeResult {
        sent_state: sent_state.map(str::to_string),
        outcome: AuthorizeOutcome::RedirectedBack {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            seq: 3,
        },
        evidence: vec![0, 1, 2, 3],
    }
}

fn page() -> AuthorizeResult {
    AuthorizeResult {
        sent_state: Some("s".into()),
        outcome: AuthorizeOutcome::Page {
            status: 400,
            title: Some("Fout".into()),
            seq: 1,
        },
        evidence: vec![0, 1],
    }
}

fn broken() -> AuthorizeResult {
    AuthorizeResult {
        sent_state: None,
        outcome: AuthorizeOutcome::Broken {
            reason: "connection refused".into(),
            seq: None,
        },
        evidence: vec![],
    }
}

fn http(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResult {
    HttpResult {
        seq: Some(7),
        outcome: HttpOutcome::Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        },
        elapsed_ms: 5,
        pages: Vec::new(),
        paging_stopped: None,
        paging_notes: Vec::new(),
        parsed: Default::default(),
    }
}

fn transport(reason: &str) -> HttpResult {
    HttpResult {
        seq: Some(7),
        outcome: HttpOutcome::Transport {
            reason: reason.into(),
        },
        elapsed_ms: 5,
        pages: Vec::new(),
        paging_stopped: None,
        paging_notes: Vec::new(),
        parsed: Default::default(),
    }
}

#[test]
fn code_issued_branches() {
    assert_eq!(
        code_issued(&back(&[("code", "c")], None)).outcome,
        Outcome::Pass
    );
    assert_eq!(
        code_issued(&back(&[("error", "access_denied")], None)).outcome,
        Outcome::Fail
    );
    assert_eq!(code_issued(&back(&[], None)).outcome, Outcome::Fail);
    assert_eq!(code_issued(&page()).outcome, Outcome::Fail);
    assert_eq!(code_issued(&broken()).outcome, Outcome::Error);
}

#[test]
fn state_echoed_branches() {
    assert_eq!(
        state_echoed(&back(&[("code", "c"), ("state", "s")], Some("s"))).outcome,
        Outcome::Pass
    );
    assert_eq!(
        state_echoed(&back(&[("code", "c")], Some("s"))).outcome,
        Outcome::Fail
    );
    assert_eq!(
        state_echoed(&back(&[("code", "c"), ("state", "fixed")], Some("s"))).outcome,
        Outcome::Fail
    );
    assert_eq!(
        state_echoed(&back(&[("code", "c")], None)).outcome,
        Outcome::Skip
    );
    assert_eq!(state_echoed(&page()).outcome, Outcome::Error);
    // An error redirect is no authorization response, however well it echoes the state.
    assert_eq!(
        state_echoed(&back(
            &[("error", "access_denied"), ("state", "s")],
            Some("s")
        ))
        .outcome,
        Outcome::Error
    );
}

/// A trace in which the browser never left the DVA (a refusal at the request).
fn at_request() -> Trace {
    Trace::default()
}

/// A trace in which the DVA resolved the login's artifact (exchange 2), before anything the
/// helpers above return at exchange 3, which answers a form posted after the login.
fn after_login() -> Trace {
    Trace {
        reached_tvs: Some(1),
        artifact_resolved: Some(2),
        posted_after_login: vec![3],
        artifact_delivered: Some(1),
        dva_asked_tvs: Some(2),
    }
}

fn dva_page(seq: usize, to: Party) -> Vec<Exchange> {
    vec![Exchange {
        seq,
        step: Some("authorize".into()),
        from: Party::Browser,
        to,
        method: "GET".into(),
        url: "https://dva/oauth/authorize".into(),
        request_headers: vec![],
        request_body: None,
        status: Some(400),
        response_headers: vec![],
        response_body: None,
        transport_error: None,
        elapsed_ms: Some(1),
        recorded_at: None,
        client_certificate: None,
        ticks: None,
    }]
}

#[test]
fn error_redirect_branches() {
    let ok = back(
        &[
            ("error", "invalid_scope"),
            ("error_description", "onbekend"),
            ("state", "s"),
        ],
        Some("s"),
    );
    let judge =
        |a: &AuthorizeResult| error_redirect(a, "invalid_scope", Stage::Request, &at_request());
    let unexplained = back(&[("error", "invalid_scope"), ("state", "s")], Some("s"));
    assert_eq!(judge(&unexplained).outcome, Outcome::Fail);
    assert_eq!(judge(&ok).outcome, Outcome::Pass);
    let numeric = back(&[("error", "400"), ("state", "s")], Some("s"));
    let verdict = judge(&numeric);
    assert_eq!(verdict.outcome, Outcome::Fail);
    assert!(verdict.message.contains("not an RFC 6749"));
    assert_eq!(
        judge(&back(
            &[("error", "invalid_request"), ("state", "s")],
            Some("s")
        ))
        .outcome,
        Outcome::Fail
    );
    let stateless = judge(&back(
        &[("error", "invalid_scope"), ("error_description", "x")],
        Some("s"),
    ));
    assert_eq!(stateless.outcome, Outcome::Fail);
    assert!(
        stateless.message.contains("without the state"),
        "{}",
        stateless.message
    );
    assert_eq!(
        judge(&back(&[("code", "c")], Some("s"))).outcome,
        Outcome::Fail
    );
    assert_eq!(judge(&page()).outcome, Outcome::Fail);
    // Refused, but only after a login: the wrong stage for a request error.
    let late = error_redirect(&ok, "invalid_scope", Stage::Request, &after_login());
    assert_eq!(late.outcome, Outcome::Fail, "{}", late.message);
    assert!(late.message.contains("TVS"), "{}", late.message);
}

/// The stimulus of a login- or consent-stage refusal never reached the DVA: `error`, never
/// `pass`, however well-formed the refusal.
#[test]
fn error_redirect_without_its_stimulus_is_an_error() {
    let denied = back(
        &[
            ("error", "access_denied"),
            ("error_description", "geannuleerd"),
            ("state", "s"),
        ],
        Some("s"),
    );
    for stage in [Stage::Login, Stage::Consent] {
        let verdict = error_redirect(&denied, "access_denied", stage, &at_request());
        assert_eq!(
            verdict.outcome,
            Outcome::Error,
            "{stage:?}: {}",
            verdict.message
        );
        assert!(verdict.message.contains("could not exercise"));
        assert_eq!(
            error_redirect(&denied, "access_denied", stage, &after_login()).outcome,
            Outcome::Pass
        );
    }
    let no_answer = Trace {
        posted_after_login: vec![],
        ..after_login()
    };
    assert_eq!(
        error_redirect(&denied, "access_denied", Stage::Consent, &no_answer).outcome,
        Outcome::Error
    );
}

#[test]
fn login_refused_branches() {
    let denied = back(
        &[
            ("error", "access_denied"),
            ("error_description", "inloggen mislukt"),
            ("state", "s"),
        ],
        Some("s"),
    );
    assert_eq!(
        login_refused(&back(&[("code", "c")], None), &after_login(), false).outcome,
        Outcome::Fail
    );
    assert_eq!(
        login_refused(&denied, &after_login(), false).outcome,
        Outcome::Pass
    );
    // A dead end after the login is no OAuth error to the PGO.
    assert_eq!(
        login_refused(&page(), &after_login(), false).outcome,
        Outcome::Fail
    );
    let other = back(
        &[
            ("error", "invalid_request"),
            ("error_description", "x"),
            ("state", "s"),
        ],
        Some("s"),
    );
    assert_eq!(
        login_refused(&other, &after_login(), false).outcome,
        Outcome::Fail
    );
    assert_eq!(
        login_refused(&broken(), &after_login(), false).outcome,
        Outcome::Error
    );
}

/// The faulty artifact was never resolved (the DVA has no login step, or the browser
/// stopped before it): no pass, whatever the browser saw.
#[test]
fn login_refused_without_its_stimulus_is_an_error() {
    let denied = back(
        &[
            ("error", "access_denied"),
            ("error_description", "x"),
            ("state", "s"),
        ],
        Some("s"),
    );
    for a in [denied, page()] {
        let verdict = login_refused(&a, &at_request(), false);
        assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
    }
    let only_tvs = Trace {
        reached_tvs: Some(1),
        ..Trace::default()
    };
    assert_eq!(
        login_refused(&page(), &only_tvs, false).outcome,
        Outcome::Error
    );
}

#[test]
fn error_page_branches() {
    let served = dva_page(1, Party::Dva);
    assert_eq!(
        error_page(&page(), &at_request(), &served).outcome,
        Outcome::Pass
    );
    let redirected = error_page(
        &back(&[("error", "invalid_request")], None),
        &at_request(),
        &served,
    );
    assert_eq!(redirected.outcome, Outcome::Fail);
    assert!(
        redirected.message.contains("unverified redirect URI"),
        "{}",
        redirected.message
    );
    assert_eq!(
        error_page(&back(&[("code", "c")], None), &at_request(), &served).outcome,
        Outcome::Fail
    );
    assert_eq!(
        error_page(&broken(), &at_request(), &served).outcome,
        Outcome::Error
    );
    // A page after a login started is no error page at the request.
    assert_eq!(
        error_page(&page(), &after_login(), &served).outcome,
        Outcome::Fail
    );
    // An HTTP 200 page cannot be told from an undriven landing page.
    let mut ok_page = page();
    ok_page.outcome = AuthorizeOutcome::Page {
        status: 200,
        title: None,
        seq: 1,
    };
    assert_eq!(
        error_page(&ok_page, &at_request(), &served).outcome,
        Outcome::Fail
    );
}

/// The page the browser stopped on was not the DVA's (say the TVS's, or no recorded
/// exchange at all): the untrusted request was never shown to be refused by the DVA.
#[test]
fn error_page_without_its_stimulus_is_an_error() {
    for exchanges in [dva_page(1, Party::Tvs), vec![]] {
        let verdict = error_page(&page(), &at_request(), &exchanges);
        assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
    }
}

/// Every negative check passes only with its control accepted; a refused, missing or
/// broken control turns a well-formed refusal into `error` (a skipped one into `skip`).
#[test]
fn a_refusal_without_an_accepted_control_is_an_error() {
    let code = StepResult::Authorize(back(&[("code", "c"), ("state", "s")], Some("s")));
    let token = StepResult::Http(http(200, &[], r#"{"access_token":"a"}"#));
    let bundle = StepResult::Http(http(200, &[], r#"{"resourceType":"Bundle"}"#));
    assert!(control_accepted("c", &BTreeMap::from([("c".into(), code)])).is_ok());
    assert!(control_accepted("c", &BTreeMap::from([("c".into(), token)])).is_ok());
    assert!(control_accepted("c", &BTreeMap::from([("c".into(), bundle)])).is_ok());
    for refused in [
        StepResult::Authorize(back(&[("error", "401"), ("state", "s")], Some("s"))),
        StepResult::Authorize(page()),
        StepResult::Authorize(broken()),
        StepResult::Http(http(400, &[], r#"{"error":"invalid_grant"}"#)),
        StepResult::Http(http(401, &[], r#"{"resourceType":"OperationOutcome"}"#)),
        StepResult::Http(http(200, &[], "{}")),
        StepResult::Http(transport("connection refused")),
        StepResult::NotRun {
            reason: "no code".into(),
        },
    ] {
        let results = BTreeMap::from([("c".to_string(), refused)]);
        let verdict = control_accepted("c", &results).unwrap_err();
        assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
        assert!(verdict.message.contains("could not prove the cause"));
    }
    let skipped = BTreeMap::from([(
        "c".to_string(),
        StepResult::Skipped {
            reason: "no second PGO".into(),
        },
    )]);
    assert_eq!(
        control_accepted("c", &skipped).unwrap_err().outcome,
        Outcome::Skip
    );
    assert_eq!(
        control_accepted("missing", &BTreeMap::new())
            .unwrap_err()
            .outcome,
        Outcome::Error
    );
}

#[test]
fn references_and_codings_branches() {
    let bundle = |resources: &str| {
        http(
            200,
            &[],
            &format!(r#"{{"resourceType":"Bundle","type":"searchset","entry":[{resources}]}}"#),
        )
    };
    let comp = |enc: &str| {
        format!(
            r#"{{"resource":{{"resourceType":"Composition","id":"c","encounter":{{"reference":"{enc}"}},"type":{{"coding":[{{"system":"http://loinc.org","code":"67781-5"}}]}}}}}}"#
        )
    };
    let encounters = bundle(r#"{"resource":{"resourceType":"Encounter","id":"e"}}"#);
    let mut results = BTreeMap::new();
    results.insert(
        "encounters".to_string(),
        StepResult::Http(encounters.clone()),
    );
    let journal = bundle(&comp("Encounter/e"));
    results.insert("journal".to_string(), StepResult::Http(journal.clone()));
    assert_eq!(
        references_resolve(&journal, &results).outcome,
        Outcome::Pass
    );
    let broken = bundle(&comp("https://dva/fhir/Encounter/weg"));
    assert_eq!(references_resolve(&broken, &results).outcome, Outcome::Fail);
    let condition = bundle(
        r#"{"resource":{"resourceType":"EpisodeOfCare","id":"x","diagnosis":[{"condition":{"reference":"Condition/c"}}]}}"#,
    );
    let verdict = references_resolve(&condition, &results);
    assert!(
        verdict.outcome == Outcome::Pass && verdict.message.contains("Condition"),
        "{}",
        verdict.message
    );

    assert_eq!(codings_complete(&journal).outcome, Outcome::Pass);
    let systemless = bundle(&comp("Encounter/e").replace(r#""system":"http://loinc.org","#, ""));
    assert_eq!(codings_complete(&systemless).outcome, Outcome::Fail);
    assert_eq!(
        codings_complete(&encounters).outcome,
        Outcome::Fail,
        "a coded result without codings"
    );
}

#[test]
fn paging_bsn_and_contained_branches() {
    let page = |total: u64, ids: &[&str], next: bool| {
        let entries: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"resource":{{"resourceType":"Observation","id":"{id}"}},"search":{{"mode":"match"}}}}"#
                )
            })
            .collect();
        let link = if next {
            r#",{"relation":"next","url":"https://dva/fhir/Observation?_page=2"}"#
        } else {
            ""
        };
        http(
            200,
            &[],
            &format!(
                r#"{{"resourceType":"Bundle","type":"searchset","total":{total},"link":[{{"relation":"self","url":"https://dva/fhir/Observation"}}{link}],"entry":[{}]}}"#,
                entries.join(",")
            ),
        )
    };
    let two_pages = |second: HttpResult| {
        let mut first = page(3, &["a", "b"], true);
        first.pages.push(second);
        first
    };
    assert_eq!(
        paged(&two_pages(page(3, &["c"], false)), 2).outcome,
        Outcome::Pass
    );
    let too_big = paged(&two_pages(page(3, &["c"], false)), 1);
    assert!(
        too_big.message.contains("more than 1"),
        "{}",
        too_big.message
    );
    let short = paged(&two_pages(page(3, &[], false)), 2);
    assert!(short.message.contains("total says 3"), "{}", short.message);
    let twice = paged(&two_pages(page(3, &["a"], false)), 2);
    assert!(twice.message.contains("two pages"), "{}", twice.message);
    let mut stopped = two_pages(page(3, &["c"], false));
    stopped.paging_stopped = Some("stopped following next links: a loop".into());
    assert_eq!(paged(&stopped, 2).outcome, Outcome::Fail);
    let refused = two_pages(http(401, &[], "{}"));
    let verdict = searchset_verdict(&refused);
    assert!(
        verdict.message.starts_with("page 2: HTTP 401"),
        "{}",
        verdict.message
    );
    assert_eq!(
        bundle_resources(&two_pages(page(3, &["c"], false))).len(),
        3
    );

    let patient = |identifier: &str| {
        http(
            200,
            &[],
            &format!(
                r#"{{"resourceType":"Bundle","type":"searchset","entry":[{{"resource":{{"resourceType":"Patient","id":"p","identifier":[{identifier}]}}}}]}}"#
            ),
        )
    };
    let masked = r#"{"system":"http://fhir.nl/fhir/NamingSystem/bsn","_value":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]}}"#;
    assert_eq!(
        no_bsn_in_bundle(&patient(masked), "999911533").outcome,
        Outcome::Pass
    );
    let bare = r#"{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"999911533"}"#;
    assert_eq!(
        no_bsn_in_bundle(&patient(bare), "999911533").outcome,
        Outcome::Fail
    );
    let elsewhere = r#"{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"999911533"}"#;
    assert_eq!(
        no_bsn_in_bundle(&patient(elsewhere), "999911533").outcome,
        Outcome::Fail
    );

    let comp = |contained: &str| {
        http(
            200,
            &[],
            &format!(
                r##"{{"resourceType":"Bundle","type":"searchset","entry":[{{"resource":{{"resourceType":"Composition","id":"c","section":[{{"entry":[{{"reference":"#je"}}]}}],"contained":[{contained}]}}}}]}}"##
            ),
        )
    };
    let results = BTreeMap::new();
    let entry = r#"{"resourceType":"Observation","id":"je","code":{"coding":[{"system":"http://fhir.nl/fhir/NamingSystem/journaalregeltypen","code":"E"}]}}"#;
    assert_eq!(
        references_resolve(&comp(entry), &results).outcome,
        Outcome::Pass
    );
    assert_eq!(
        references_resolve(&comp(""), &results).outcome,
        Outcome::Fail
    );
}

/// The first failing verdict of the checks that read a search over all its pages.
fn searchset_verdict(h: &HttpResult) -> Verdict {
    match searchset(h) {
        Ok(_) => v(Outcome::Pass, "", vec![]),
        Err(verdict) => verdict,
    }
}

#[test]
fn token_issued_branches() {
    let svc = vec!["49".to_string()];
    let good = r#"{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r","scope":"49"}"#;
    for (scope, outcome) in [
        (r#","scope":"48 49""#, Outcome::Pass),
        (r#","scope":"praktijk~49""#, Outcome::Pass),
        (r#","scope":"48""#, Outcome::Fail),
        (r#","scope":"praktijk~149""#, Outcome::Fail),
        ("", Outcome::Fail),
    ] {
        let body = good.replace(r#","scope":"49""#, scope);
        let verdict = token_issued(
            &http(200, &[("cache-control", "no-store")], &body),
            900,
            &svc,
        );
        assert_eq!(verdict.outcome, outcome, "{scope}: {}", verdict.message);
    }
    assert_eq!(
        token_issued(
            &http(200, &[("cache-control", "no-store")], good),
            900,
            &svc
        )
        .outcome,
        Outcome::Pass
    );
    let no_store = token_issued(&http(200, &[], good), 900, &svc);
    assert_eq!(no_store.outcome, Outcome::Fail);
    assert!(no_store.message.contains("no-store"));
    let long = good.replace("900", "3600");
    assert_eq!(
        token_issued(
            &http(200, &[("cache-control", "no-store")], &long),
            900,
            &svc
        )
        .outcome,
        Outcome::Fail
    );
    assert_eq!(
        token_issued(&http(400, &[], r#"{"error":"invalid_grant"}"#), 900, &svc).outcome,
        Outcome::Fail
    );
    assert_eq!(
        token_issued(&transport("connection refused"), 900, &svc).outcome,
        Outcome::Error
    );
}

#[test]
fn token_refused_branches() {
    // (status, body, expected error, outcome); the status is exact: 401 only for
    // invalid_client (RFC 6749 §5.2).
    for (status, body, expected, outcome) in [
        (
            400,
            r#"{"error":"invalid_grant"}"#,
            "invalid_grant",
            Outcome::Pass,
        ),
        (
            400,
            r#"{"error":"invalid_request"}"#,
            "invalid_grant",
            Outcome::Fail,
        ),
        (400, r#"{"error":"400"}"#, "invalid_grant", Outcome::Fail),
        (
            200,
            r#"{"access_token":"a"}"#,
            "invalid_grant",
            Outcome::Fail,
        ),
        (500, "oops", "invalid_grant", Outcome::Fail),
        (
            401,
            r#"{"error":"invalid_grant"}"#,
            "invalid_grant",
            Outcome::Fail,
        ),
        (
            403,
            r#"{"error":"invalid_grant"}"#,
            "invalid_grant",
            Outcome::Fail,
        ),
        (
            401,
            r#"{"error":"invalid_client"}"#,
            "invalid_client",
            Outcome::Pass,
        ),
        (
            400,
            r#"{"error":"invalid_client"}"#,
            "invalid_client",
            Outcome::Pass,
        ),
    ] {
        let verdict = token_refused(&http(status, &[], body), expected, false);
        assert_eq!(
            verdict.outcome, outcome,
            "{status} {body}: {}",
            verdict.message
        );
    }
    let alert = transport("error sending request: received fatal alert: CertificateRequired");
    assert_eq!(
        token_refused(&alert, "invalid_client", true).outcome,
        Outcome::Pass
    );
    assert_eq!(
        token_refused(&alert, "invalid_client", false).outcome,
        Outcome::Error
    );
    assert_eq!(
        token_refused(&transport("connection refused"), "invalid_client", true).outcome,
        Outcome::Error
    );
}

/// A token request that never got an answer from the token endpoint proves nothing.
#[test]
fn token_refused_without_its_stimulus_is_an_error() {
    for reason in ["connection refused", "operation timed out", "dns error"] {
        let verdict = token_refused(&transport(reason), "invalid_grant", true);
        assert_eq!(verdict.outcome, Outcome::Error, "{reason}");
    }
}

#[test]
fn resource_refused_branches() {
    let challenge = [("www-authenticate", "Bearer error=\"invalid_token\"")];
    let outcome = |code: &str| {
        format!(
            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"{code}"}}]}}"#
        )
    };
    let judge = |status, headers: &[(&str, &str)], body: &str, issue| {
        resource_refused(
            &http(status, headers, body),
            401,
            Some("invalid_token"),
            issue,
        )
    };
    assert_eq!(
        judge(401, &challenge, &outcome("security"), "security").outcome,
        Outcome::Pass
    );
    let wrong_issue = judge(401, &challenge, &outcome("processing"), "security");
    assert_eq!(wrong_issue.outcome, Outcome::Fail);
    assert!(
        wrong_issue.message.contains("issue.code"),
        "{}",
        wrong_issue.message
    );
    assert_eq!(
        judge(401, &[], &outcome("security"), "security").outcome,
        Outcome::Fail
    );
    assert_eq!(
        judge(401, &challenge, "{}", "security").outcome,
        Outcome::Fail
    );
    assert_eq!(
        judge(403, &challenge, &outcome("security"), "security").outcome,
        Outcome::Fail
    );
    assert_eq!(
        judge(200, &[], r#"{"resourceType":"Bundle"}"#, "security").outcome,
        Outcome::Fail
    );
}

/// A resource request that never got an answer proves nothing.
#[test]
fn resource_refused_without_its_stimulus_is_an_error() {
    let verdict = resource_refused(&transport("connection reset"), 401, None, "security");
    assert_eq!(verdict.outcome, Outcome::Error);
}

#[test]
fn fhir_searchset_branches() {
    let types = &["MedicationRequest", "Medication"];
    let entry = |t: &str, profile: bool| {
        let meta = if profile {
            r#","meta":{"profile":["p"]}"#
        } else {
            ""
        };
        format!(r#"{{"resource":{{"resourceType":"{t}","id":"x"{meta}}}}}"#)
    };
    let bundle = |kind: &str, entries: &[String]| {
        format!(
            r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{}]}}"#,
            entries.join(",")
        )
    };
    let ok = bundle(
        "searchset",
        &[entry("MedicationRequest", true), entry("Medication", true)],
    );
    assert_eq!(
        fhir_searchset(&http(200, &[], &ok), types).outcome,
        Outcome::Pass
    );
    let collection = bundle("collection", &[entry("MedicationRequest", true)]);
    assert_eq!(
        fhir_searchset(&http(200, &[], &collection), types).outcome,
        Outcome::Fail
    );
    let no_profile = bundle("searchset", &[entry("MedicationRequest", false)]);
    assert!(
        fhir_searchset(&http(200, &[], &no_profile), types)
            .message
            .contains("meta.profile")
    );
    let stranger = bundle(
        "searchset",
        &[entry("MedicationRequest", true), entry("Patient", true)],
    );
    assert_eq!(
        fhir_searchset(&http(200, &[], &stranger), types).outcome,
        Outcome::Fail
    );
    let empty = bundle("searchset", &[]);
    assert_eq!(
        fhir_searchset(&http(200, &[], &empty), types).outcome,
        Outcome::Fail
    );
    assert_eq!(
        fhir_searchset(&http(401, &[], "{}"), types).outcome,
        Outcome::Fail
    );
    assert_eq!(
        fhir_searchset(&transport("timed out"), types).outcome,
        Outcome::Error
    );
}

/// A refusal has no links, no BSN, no references and answers fast: none of the checks that read
/// a search's content or time may pass on one.
#[test]
fn positive_checks_do_not_pass_on_a_refusal() {
    let refusal = http(
        401,
        &[("www-authenticate", "Bearer error=\"invalid_token\"")],
        r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"security"}]}"#,
    );
    let results = BTreeMap::from([("s".to_string(), StepResult::Http(refusal.clone()))]);
    for (name, verdict) in [
        ("no-bsn-in-links", no_bsn_in_links(&refusal)),
        ("no-bsn-in-bundle", no_bsn_in_bundle(&refusal, "999911533")),
        ("references-resolve", references_resolve(&refusal, &results)),
        ("within-budget", within_budget(&refusal, 10_000)),
        ("codings-complete", codings_complete(&refusal)),
        ("profile-valid", profile_valid(&refusal)),
        ("paged", paged(&refusal, 1000)),
    ] {
        assert_ne!(
            verdict.outcome,
            Outcome::Pass,
            "{name}: {}",
            verdict.message
        );
    }
}

/// An artifact that must not be resolved: a pass needs its delivery and no request of the DVA's
/// to the TVS; resolving it fails, an undelivered one is an error.
#[test]
fn an_unresolved_refusal_needs_the_delivery_and_no_resolution() {
    let denied = back(
        &[
            ("error", "access_denied"),
            ("error_description", "x"),
            ("state", "s"),
        ],
        Some("s"),
    );
    let delivered = Trace {
        artifact_delivered: Some(1),
        ..Trace::default()
    };
    assert_eq!(
        login_refused(&denied, &delivered, true).outcome,
        Outcome::Pass
    );
    let stateless = back(&[("error", "access_denied")], Some("s"));
    assert_eq!(
        login_refused(&stateless, &delivered, true).outcome,
        Outcome::Fail
    );
    let resolved = login_refused(&denied, &after_login(), true);
    assert_eq!(resolved.outcome, Outcome::Fail, "{}", resolved.message);
    assert_eq!(
        login_refused(&denied, &at_request(), true).outcome,
        Outcome::Error
    );
    assert_eq!(
        login_refused(&page(), &delivered, true).outcome,
        Outcome::Fail
    );
    assert_eq!(
        login_refused(&back(&[("code", "c")], None), &delivered, true).outcome,
        Outcome::Fail
    );
}

/// Two refusals that differ only in error_description are an oracle; identical ones pass; one
/// without its resolution proves nothing.
#[test]
fn same_refusal_compares_the_answers_of_two_proven_refusals() {
    let answer = |description: &str| {
        back(
            &[
                ("error", "access_denied"),
                ("error_description", description),
                ("state", "s"),
            ],
            Some("s"),
        )
    };
    let same = same_refusal(
        &answer("mislukt"),
        &after_login(),
        &answer("mislukt"),
        &after_login(),
    );
    assert_eq!(same.outcome, Outcome::Pass, "{}", same.message);
    let apart = same_refusal(
        &answer("mislukt: bad padding"),
        &after_login(),
        &answer("mislukt: not UTF-8"),
        &after_login(),
    );
    assert_eq!(apart.outcome, Outcome::Fail, "{}", apart.message);
    assert_eq!(
        same_refusal(&answer("x"), &after_login(), &answer("x"), &at_request()).outcome,
        Outcome::Error
    );
    assert_eq!(
        same_refusal(
            &back(&[("code", "c")], None),
            &after_login(),
            &answer("x"),
            &after_login()
        )
        .outcome,
        Outcome::Fail
    );
}

#[test]
fn entity_not_fetched_fails_on_a_fetch_and_needs_the_resolution() {
    let fetch = |url: &str| {
        let mut x = dva_page(5, Party::Tvs).remove(0);
        x.from = Party::Dva;
        x.url = url.into();
        x
    };
    let fetched = vec![fetch("https://soap.tvs/entity/abc")];
    assert_eq!(
        entity_not_fetched(&after_login(), &fetched, "authorize").outcome,
        Outcome::Fail
    );
    let other = vec![fetch("https://soap.tvs/ars")];
    assert_eq!(
        entity_not_fetched(&after_login(), &other, "authorize").outcome,
        Outcome::Pass
    );
    assert_eq!(
        entity_not_fetched(&at_request(), &other, "authorize").outcome,
        Outcome::Error
    );
}

#[test]
fn a_message_lists_at_most_twenty_problems_and_counts_the_rest() {
    let problems: Vec<String> = (0..1_000_000).map(|i| format!("p{i}")).collect();
    let listed = super::problem_list(&problems);
    assert!(listed.starts_with("p0; p1; "), "{listed}");
    assert!(listed.ends_with("; p19; and 999980 more"), "{listed}");
    assert_eq!(super::problem_list(&problems[..2]), "p0; p1");
}
