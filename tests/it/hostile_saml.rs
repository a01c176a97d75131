//! Hostile DVA towards the mock TVS: an AuthnRequest with a DOCTYPE and an external entity, one
//! that is no base64, an ArtifactResolve over TLS without a client certificate and an oversized
//! SOAP body. The mock TVS must refuse each cleanly (no crash, no hang: it still answers after)
//! and the scenario never passes.
//!
//! The front-channel cases: the hostile DVA's authorization endpoint answers the browser with
//! an auto-submitting form that posts the crafted SAMLRequest to the run's mock TVS; the TVS's
//! refusal page is where the browser stops, which `code-issued` judges: `fail` (the DVA sent the
//! person into a dead end), with the TVS's HTTP 400 as the reason.
//!
//! The back-channel cases: the hostile DVA's authorization endpoint first connects to the TVS's
//! artifact resolution service itself, then sends the browser back with a code as the baseline
//! does. What the TVS answered is recorded by the handler and asserted here.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use koppeltest::pki::Channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::Mock;
use wiremock::matchers::{method, path};

use crate::hostile::{BACK_HOST, Case, ENTITY_ID, REDIRECT_URI, close, html, raw, shared};

/// How long the hostile DVA waits for the TVS: a refusal must come well within it.
const TVS_BOUND: Duration = Duration::from_secs(5);

fn autopost(tvs_front: u16, saml_request: &str) -> Mock {
    Mock::given(method("GET"))
        .and(path("/oauth/authorize"))
        .respond_with(close(html(format!(
            "<!doctype html><title>Doorsturen</title><body onload=\"document.forms[0].submit()\">\
             <form method=\"post\" action=\"https://tvs.koppeltest.test:{tvs_front}/sso\">\
             <input type=\"hidden\" name=\"SAMLRequest\" value=\"{saml_request}\">\
             <input type=\"hidden\" name=\"RelayState\" value=\"r1\"></form>"
        ))))
}

fn authn_request(tvs_front: u16, prolog: &str, name_id: &str) -> String {
    format!(
        "{prolog}<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_h1\" Version=\"2.0\" \
         IssueInstant=\"2026-01-01T00:00:00Z\" Destination=\"https://tvs.koppeltest.test:{tvs_front}/sso\" \
         AssertionConsumerServiceIndex=\"0\"><saml:Issuer>{ENTITY_ID}</saml:Issuer>{name_id}</samlp:AuthnRequest>"
    )
}

/// An AuthnRequest with a DOCTYPE declaring an external entity (XXE) that reads a local file.
#[test]
fn an_authn_request_with_doctype_and_xxe() {
    let case = Case::new("saml-authn-xxe");
    let (tvs_front, _) = case.tvs_ports();
    let xml = authn_request(
        tvs_front,
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
        "<saml:Subject>&x;</saml:Subject>",
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    case.mock(autopost(tvs_front, &b64))
        .expect("authorize", &["stopped on a page (http 400"])
        .secret("root:x:0:0")
        .may_fail()
        .run();
}

/// A SAMLRequest that is not base64 at all.
#[test]
fn an_authn_request_that_is_not_base64() {
    let case = Case::new("saml-authn-bad-base64");
    let (tvs_front, _) = case.tvs_ports();
    case.mock(autopost(tvs_front, "!!!%%%not*base64***"))
        .expect("authorize", &["stopped on a page (http 400"])
        .may_fail()
        .run();
}

/// One HTTP/1.1 request over TLS to the TVS, bounded by [`TVS_BOUND`]: the status line, or why
/// there was none.
async fn tls_request(
    port: u16,
    sni: &'static str,
    channel: Channel,
    identity: bool,
    request: Vec<u8>,
) -> String {
    let pki = &shared().pki;
    let leaf = pki.leaf(Channel::Back, BACK_HOST).expect("back leaf");
    let config = koppeltest::tls::client_config(&pki.roots(channel), identity.then_some(&*leaf))
        .expect("client config");
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls_pki_types::ServerName::try_from(sni).map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        // The body may be refused before it is all sent: a write error is an answer too.
        if let Err(e) = tls.write_all(&request).await {
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            return Ok(first_line(&answer).unwrap_or_else(|| format!("write: {e}")));
        }
        let mut answer = Vec::new();
        let read = tls.read_to_end(&mut answer).await;
        match (first_line(&answer), read) {
            (Some(line), _) => Ok(line),
            (None, Err(e)) => Err(format!("read: {e}")),
            (None, Ok(_)) => Err("closed without an answer".to_string()),
        }
    };
    match tokio::time::timeout(TVS_BOUND, attempt).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("refused: {e}"),
        Err(_) => "HANG: no answer within the bound".to_string(),
    }
}

fn first_line(answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

fn post_ars(tvs_back: u16, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /ars HTTP/1.1\r\nHost: soap.tvs.koppeltest.test:{tvs_back}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"http://www.oasis-open.org/committees/security\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Runs a back-channel case: the hostile DVA's authorization endpoint sends `body` to the TVS's
/// artifact resolution service (with or without its client certificate), then asks the TVS for
/// its metadata to show it still answers, then sends the browser back with a code.
fn back_channel_case(name: &str, identity: bool, body: Vec<u8>) -> (String, String, Duration) {
    let case = Case::new(name);
    let (tvs_front, tvs_back) = case.tvs_ports();
    let seen: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
    let record = seen.clone();
    let body = Arc::new(body);
    case.raw(
        crate::hostile::Side::Front,
        "/oauth/authorize",
        raw(move |mut s, head| {
            let record = record.clone();
            let body = body.clone();
            async move {
                let t = Instant::now();
                let ars = tls_request(
                    tvs_back,
                    "soap.tvs.koppeltest.test",
                    Channel::Back,
                    identity,
                    post_ars(tvs_back, &body),
                )
                .await;
                let took = t.elapsed();
                let alive = tls_request(
                    tvs_front,
                    "tvs.koppeltest.test",
                    Channel::Front,
                    false,
                    format!("GET /metadata HTTP/1.1\r\nHost: tvs.koppeltest.test:{tvs_front}\r\nConnection: close\r\n\r\n").into_bytes(),
                )
                .await;
                if let Ok(mut r) = record.lock() {
                    r.push((ars, took));
                    r.push((alive, Duration::ZERO));
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let state = head
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("state="))
                    .unwrap_or_default()
                    .to_string();
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {REDIRECT_URI}?code=hostile-code-4f2a9c&state={state}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = s.shutdown().await;
            }
        }),
    )
    .expect("patient", &["no patient in the result"])
    .may_fail()
    .run();
    let seen = seen.lock().expect("observations").clone();
    assert_eq!(
        seen.len(),
        2,
        "{name}: the hostile DVA did not reach the TVS: {seen:?}"
    );
    (seen[0].0.clone(), seen[1].0.clone(), seen[0].1)
}

/// An ArtifactResolve over TLS without a client certificate: the TVS's artifact resolution
/// service refuses the connection (mutual TLS), promptly, and answers the next caller.
#[test]
fn an_artifact_resolve_without_a_client_certificate() {
    let (ars, alive, took) = back_channel_case(
        "saml-ars-no-client-cert",
        false,
        b"<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body/></soapenv:Envelope>".to_vec(),
    );
    assert!(ars.starts_with("refused"), "the TVS accepted it: {ars}");
    assert!(took < TVS_BOUND, "the refusal took {took:?}");
    assert!(alive.contains(" 200"), "the TVS no longer answers: {alive}");
    println!("hostile saml ars without client certificate: {ars} in {took:?}");
}

/// An oversized SOAP body (8 MiB) to the artifact resolution service, with a valid client
/// certificate: refused by size before it is read, promptly, and the TVS still answers.
#[test]
fn an_oversized_soap_body() {
    let mut body = b"<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>".to_vec();
    body.resize(8 << 20, b' ');
    let (ars, alive, took) = back_channel_case("saml-ars-oversized", true, body);
    assert!(
        !ars.contains(" 200") && !ars.starts_with("HANG"),
        "the TVS did not refuse the oversized body: {ars}"
    );
    assert!(took < TVS_BOUND, "the refusal took {took:?}");
    assert!(alive.contains(" 200"), "the TVS no longer answers: {alive}");
    println!("hostile saml oversized soap body: {ars} in {took:?}");
}
