//! The DVA as SAML service provider, over the wire: the mock TVS judges the DVA's own
//! AuthnRequest and ArtifactResolve, and the DVA's decision on each level of assurance follows
//! the row's minimum. Every check passes against the conformant simulated DVA and fails against
//! the quirk that really sends (or decides) it wrong, and against no other.

use std::collections::BTreeSet;

use koppeltest::outcome::Outcome;
use koppeltest::runner::Finished;
use koppeltest::scenario::{self, Scenario};

use crate::helpers::{matrix_toml, prepare, run};

fn embedded(ids: &[&str]) -> Vec<Scenario> {
    let all = scenario::embedded().unwrap();
    let found: Vec<Scenario> = all
        .into_iter()
        .filter(|s| ids.contains(&s.id.as_str()))
        .collect();
    assert_eq!(found.len(), ids.len(), "embedded scenarios {ids:?}");
    found
}

/// A one-row matrix with `quirks`, whose row requires `min_loa` when given.
fn matrix(quirks: &[&str], min_loa: Option<&str>) -> String {
    let text = matrix_toml(quirks, &[], "2.2");
    match min_loa {
        Some(loa) => text.replacen(
            "target = {",
            &format!("min_loa = \"{loa}\"\ntarget = {{"),
            1,
        ),
        None => text,
    }
}

async fn run_row(quirks: &[&str], min_loa: Option<&str>, ids: &[&str]) -> Vec<Finished> {
    run(prepare(&matrix(quirks, min_loa), embedded(ids))).await
}

fn report<'f>(finished: &'f [Finished], id: &str) -> &'f koppeltest::report::ScenarioReport {
    &finished
        .iter()
        .find(|f| f.report.id == id)
        .unwrap_or_else(|| panic!("no report for {id}"))
        .report
}

const MESSAGES: &str = "saml.service-provider-messages";

/// Each quirk and the one check kind of the messages scenario it must fail (on both logins).
const MESSAGE_QUIRKS: &[(&str, &str, &str)] = &[
    ("authn-request-sha1", "authn-request-signed", "SHA-1"),
    (
        "authn-request-acs-url",
        "authn-request-acs-index",
        "AssertionConsumerServiceURL",
    ),
    ("authn-request-wrong-issuer", "authn-request-issuer", ":LC:"),
    (
        "authn-request-no-destination",
        "authn-request-destination",
        "no Destination",
    ),
    (
        "authn-request-comparison-exact",
        "authn-request-loa",
        "Comparison=\"exact\"",
    ),
    ("authn-request-loa-midden", "authn-request-loa", "midden"),
    (
        "authn-request-cached",
        "authn-request-fresh",
        "reuses the ID",
    ),
    (
        "authn-request-stale",
        "authn-request-fresh",
        "s from when it was posted",
    ),
    (
        "artifact-resolve-unsigned",
        "artifact-resolve-signed",
        "unsigned",
    ),
    (
        "artifact-resolve-other-certificate",
        "artifact-resolve-mutual-tls",
        "other.",
    ),
    (
        "artifact-resolved-twice",
        "artifact-resolved-once",
        "2 times",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn each_message_check_passes_conformant_and_fails_against_exactly_its_quirk() {
    let conformant = run_row(&[], None, &[MESSAGES]).await;
    let r = report(&conformant, MESSAGES);
    assert_eq!(r.checks.len(), 18, "nine checks on each of two logins");
    for c in &r.checks {
        assert_eq!(
            c.outcome,
            Outcome::Pass,
            "{} on {}: {}",
            c.kind,
            c.step,
            c.message
        );
        assert!(!c.evidence.is_empty(), "{} passed without evidence", c.kind);
    }
    // The witness recorded the registered certificate, by name and fingerprint only.
    let presented: Vec<_> = r
        .exchanges
        .iter()
        .filter_map(|x| x.client_certificate.as_ref())
        .collect();
    assert_eq!(presented.len(), 2, "one ArtifactResolve per login");
    assert!(
        presented
            .iter()
            .all(|c| c.sha256.len() == 64 && !c.dns_names.is_empty() && !c.subject.is_empty()),
        "{presented:?}"
    );

    let mut set = tokio::task::JoinSet::new();
    for (quirk, kind, why) in MESSAGE_QUIRKS {
        set.spawn(async move {
            let finished = run_row(&[quirk], None, &[MESSAGES]).await;
            (quirk, kind, why, finished)
        });
    }
    let mut killed = BTreeSet::new();
    while let Some(done) = set.join_next().await {
        let (quirk, kind, why, finished) = done.expect("quirk run");
        let r = report(&finished, MESSAGES);
        let failed: BTreeSet<&str> = r
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .map(|c| c.kind.as_str())
            .collect();
        assert_eq!(failed, BTreeSet::from([*kind]), "{quirk}: {:#?}", r.checks);
        for c in r.checks.iter().filter(|c| c.kind == *kind) {
            assert_eq!(
                c.outcome,
                Outcome::Fail,
                "{quirk} on {}: {}",
                c.step,
                c.message
            );
            assert!(c.message.contains(why), "{quirk}: {}", c.message);
        }
        // Nothing passes that could not be judged: where the mock TVS refused the message, the
        // checks that needed the login to go on are errors.
        assert!(
            r.checks.iter().all(|c| c.outcome != Outcome::Skip),
            "{quirk}: {:#?}",
            r.checks
        );
        killed.insert(*kind);
    }
    let kinds: BTreeSet<&str> = report(&conformant, MESSAGES)
        .checks
        .iter()
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(killed, kinds, "a message check without a killing quirk");
}

/// The nine message checks every login gets, whatever its scenario declares.
const PER_LOGIN: &[&str] = &[
    "authn-request-signed",
    "authn-request-acs-index",
    "authn-request-issuer",
    "authn-request-destination",
    "authn-request-loa",
    "authn-request-fresh",
    "artifact-resolve-signed",
    "artifact-resolve-mutual-tls",
    "artifact-resolved-once",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_login_is_judged_on_the_dvas_own_messages() {
    // A token scenario (one login), a replay (two logins, the second resolving a spent
    // artifact), an attack (the DVA resolves, then refuses) and one without a login.
    let ids = [
        "token.code-replay",
        "saml.artifact-replay",
        "saml.xsw1",
        "auth.missing-client-id",
    ];
    let per_step = |r: &koppeltest::report::ScenarioReport, step: &str| -> BTreeSet<String> {
        r.checks
            .iter()
            .filter(|c| c.step == step && PER_LOGIN.contains(&c.kind.as_str()))
            .map(|c| c.kind.clone())
            .collect()
    };
    let all: BTreeSet<String> = PER_LOGIN.iter().map(|k| k.to_string()).collect();
    let conformant = run_row(&[], None, &ids).await;
    for (id, steps) in [
        ("token.code-replay", &["authorize"][..]),
        ("saml.artifact-replay", &["control", "replay"][..]),
        ("saml.xsw1", &["control", "authorize"][..]),
    ] {
        let r = report(&conformant, id);
        assert_eq!(r.outcome, Outcome::Pass, "{id}: {:#?}", r.checks);
        for step in steps {
            assert_eq!(per_step(r, step), all, "{id} step {step}");
        }
    }
    // The refused request started no login: nothing of a login is judged there, and nothing
    // becomes an error for it. Its control login is judged like any other.
    let r = report(&conformant, "auth.missing-client-id");
    assert_eq!(r.outcome, Outcome::Pass, "{:#?}", r.checks);
    assert!(per_step(r, "authorize").is_empty(), "{:#?}", r.checks);
    assert_eq!(per_step(r, "control"), all);

    // A DVA that resolves every artifact twice logs in all the same; every login shows it.
    let twice = run_row(&["artifact-resolved-twice"], None, &ids).await;
    for id in ["token.code-replay", "saml.artifact-replay", "saml.xsw1"] {
        let r = report(&twice, id);
        let failed: BTreeSet<&str> = r
            .checks
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| c.kind.as_str())
            .collect();
        assert_eq!(
            failed,
            BTreeSet::from(["artifact-resolved-once"]),
            "{id}: {:#?}",
            r.checks
        );
    }
    // A DVA that asks for an exact level: the token scenario's login still works, and fails
    // the request check.
    let exact = run_row(
        &["authn-request-comparison-exact"],
        None,
        &["token.code-replay"],
    )
    .await;
    let r = report(&exact, "token.code-replay");
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(failed, ["authn-request-loa"], "{:#?}", r.checks);
}

const LEVELS: &[&str] = &[
    "saml.loa-basis",
    "saml.loa-midden",
    "saml.loa-substantieel",
    "saml.loa-hoog",
];

fn outcome(finished: &[Finished], id: &str) -> Outcome {
    report(finished, id).outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn the_level_decisions_follow_the_row_minimum_and_each_deviation_is_caught() {
    let mut ids = LEVELS.to_vec();
    ids.push(MESSAGES);
    // The same scenarios are right for a substantieel row and a hoog row.
    for min_loa in [None, Some("substantial"), Some("high")] {
        let finished = run_row(&[], min_loa, &ids).await;
        for id in &ids {
            let r = report(&finished, id);
            assert_eq!(
                r.outcome,
                Outcome::Pass,
                "{id} on a {min_loa:?} row: {:#?}",
                r.checks
            );
        }
        let substantieel = &report(&finished, "saml.loa-substantieel").checks[0];
        let expected = if min_loa == Some("high") {
            "must be refused"
        } else {
            "was accepted"
        };
        assert!(
            substantieel.message.contains(expected),
            "{min_loa:?}: {}",
            substantieel.message
        );
    }
    // Hoog, above the substantieel asked for, refused by a DVA that wants exactly what it
    // asked for.
    let exact = run_row(&["loa-exact-match"], None, LEVELS).await;
    assert_eq!(outcome(&exact, "saml.loa-hoog"), Outcome::Fail);
    assert_eq!(outcome(&exact, "saml.loa-substantieel"), Outcome::Pass);
    // On a hoog row it asks for hoog, so the same quirk is not noticed there.
    let exact_high = run_row(&["loa-exact-match"], Some("high"), LEVELS).await;
    assert_eq!(outcome(&exact_high, "saml.loa-hoog"), Outcome::Pass);
    // Substantieel refused on a substantieel row by an off-by-one comparison.
    let exclusive = run_row(&["loa-minimum-exclusive"], None, LEVELS).await;
    let r = report(&exclusive, "saml.loa-substantieel");
    assert_eq!(r.outcome, Outcome::Fail, "{:#?}", r.checks);
    assert!(r.checks[0].message.contains("must be accepted"));
    // Hoog is accepted; but the control login, at substantieel, is refused too, so nothing
    // about that scenario can be proven: an error, not a pass and not a failure.
    assert_eq!(outcome(&exclusive, "saml.loa-hoog"), Outcome::Error);
    // Basis and midden accepted by a DVA that does not look at the level.
    let unchecked = run_row(&["loa-unchecked"], None, LEVELS).await;
    for id in ["saml.loa-basis", "saml.loa-midden"] {
        assert_eq!(outcome(&unchecked, id), Outcome::Fail, "{id}");
    }
    for id in ["saml.loa-substantieel", "saml.loa-hoog"] {
        assert_eq!(outcome(&unchecked, id), Outcome::Pass, "{id}");
    }
}

/// The deviating shapes are real messages: the SHA-1 AuthnRequest carries a genuine
/// rsa-sha1 signature (xmlsec1, the library most SAML stacks build on, verifies it), and the
/// mock TVS refuses exactly the shapes the real TVS refuses and reads the rest.
#[test]
fn the_quirks_shapes_are_real_and_the_mock_tvs_refuses_what_the_real_one_does() {
    use base64::Engine;
    use koppeltest::saml::{self, AuthnRequest, AuthnRequestShape, Comparison, Loa};

    let pki = crate::helpers::pki();
    let signing = pki.saml_key("it-sp-signing").unwrap();
    let encryption = pki.saml_key("it-sp-encryption").unwrap();
    let entity = "urn:nl-eid-gdi:1.0:DV:00000009999999999100:entities:9100";
    let md = saml::parse_metadata(&saml::sp_metadata(
        entity,
        &signing,
        &encryption,
        "https://dva.test/saml/acs",
    ))
    .unwrap();
    let lookup = |e: &str| (e == md.entity_id).then_some(&md);
    let request = AuthnRequest {
        id: koppeltest::ids::saml_id(),
        issuer: entity.into(),
        destination: "https://tvs.test/sso".into(),
        acs_index: 0,
        requested_loa: Loa::Substantial,
    };
    let post = |shape: AuthnRequestShape| request.to_post_binding_with(&signing, &shape).unwrap();

    let sha1 = post(AuthnRequestShape {
        algorithm: saml::dsig::SignAlg::RsaSha1,
        ..Default::default()
    });
    let err = AuthnRequest::from_post_binding(&sha1, lookup).unwrap_err();
    assert!(err.to_string().contains("SHA-1"), "{err}");
    let dir = crate::helpers::temp_dir("sp-sha1");
    let cert = dir.join("signing.pem");
    let b64 = signing.cert_b64();
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        &cert,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let file = dir.join("authn-sha1.xml");
    std::fs::write(
        &file,
        base64::engine::general_purpose::STANDARD
            .decode(&sha1)
            .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem"])
        .arg(&cert)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
        ])
        .arg(&file)
        .output()
        .expect("xmlsec1 (apt-get install -y xmlsec1)");
    assert!(
        out.status.success(),
        "xmlsec1 refused the rsa-sha1 AuthnRequest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).ok();

    let acs_url = post(AuthnRequestShape {
        acs_url: Some("https://dva.test/saml/acs".into()),
        ..Default::default()
    });
    let err = AuthnRequest::from_post_binding(&acs_url, lookup).unwrap_err();
    assert!(
        err.to_string().contains("AssertionConsumerServiceURL"),
        "{err}"
    );
    // Comparison is the DV's business: the mock TVS reads such a request.
    for comparison in [Comparison::Exact, Comparison::Omitted] {
        let posted = post(AuthnRequestShape {
            comparison,
            ..Default::default()
        });
        assert!(AuthnRequest::from_post_binding(&posted, lookup).is_ok());
    }

    let (_, unsigned) =
        saml::artifact_resolve_with(entity, "https://soap.tvs.test/ars", "AAQAAartifact", None)
            .unwrap();
    let err = saml::parse_artifact_resolve(&unsigned, lookup).unwrap_err();
    assert!(err.to_string().contains("no Signature"), "{err}");
    assert_eq!(
        saml::unverified_artifact(&unsigned).as_deref(),
        Some("AAQAAartifact")
    );
    let (_, signed) = saml::artifact_resolve(
        entity,
        "https://soap.tvs.test/ars",
        "AAQAAartifact",
        &signing,
    )
    .unwrap();
    assert_eq!(
        saml::parse_artifact_resolve(&signed, lookup)
            .unwrap()
            .artifact,
        "AAQAAartifact"
    );
}
