//! The DVA's OAuth 2.0 authorization server (MedMij §3–4) and its SAML service-provider leg.
//!
//! Front channel: `authorize` → landing page → `login` (signed AuthnRequest, HTTP-POST to the
//! TVS) → `assertion_consumer` (artifact, ArtifactResolve over mTLS SOAP, verification, BSN,
//! beschikbaarheidstoets) → consent page → `consent` → redirect with the code.
//! Back channel: `token` (authorization_code and refresh_token grants, mutual TLS).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::quirks::{Quirk, SLOW_ANSWER, error_code};
use super::{AuthSession, CodeGrant, Dva, Stimulus, TokenGrant};
use crate::saml::{self, AssertionPolicy, AuthnRequest, LoginFailure, escape};
use crate::tls::PeerCertificates;

const SESSION_COOKIE: &str = "kt_dva_session";

/// Whom [`Quirk::AcceptEverything`] serves when it has no person: the default test person.
const ANYONE: &str = "999911533";

pub(super) fn parse_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

/// The error page MedMij requires when client_id or redirect_uri cannot be trusted: never a
/// redirect to an unverified URI (RFC 6749 §4.1.2.1).
fn error_page(dva: &Dva, why: &str) -> Response {
    dva.note(format!(
        "authorization request refused with an error page: {why}"
    ));
    page(
        StatusCode::BAD_REQUEST,
        "Technische storing",
        &format!(
            "<p id=\"kt-error\">Er is een technische storing opgetreden.</p><p>{}</p>",
            escape(why)
        ),
    )
}

fn found(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("{base}?{}", q.finish())
}

/// Redirects back to the PGO with an RFC 6749 error and the `state`.
fn error_redirect(
    dva: &Dva,
    redirect_uri: &str,
    state: Option<&str>,
    code: &'static str,
    description: &str,
) -> Response {
    dva.note(format!("authorization refused: {code}: {description}"));
    let error = error_code(&dva.cfg.quirks, code);
    let mut pairs = vec![("error", error.as_str())];
    if !dva.cfg.quirks.has(Quirk::ErrorDescriptionMissing) {
        pairs.push(("error_description", description));
    }
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    found(&with_query(redirect_uri, &pairs))
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn session(dva: &Dva, headers: &HeaderMap) -> Option<(String, AuthSession)> {
    let sid = session_id(headers)?;
    let s = Dva::lock(&dva.sessions).get(&sid).cloned()?;
    Some((sid, s))
}

/// Which gegevensdiensten a scope grants, in any of the three MedMij dialects, or `None`.
fn granted_services(dva: &Dva, scope: &str) -> Option<Vec<String>> {
    let local = dva.cfg.practice_local();
    let mut granted = Vec::new();
    let naam_id_only = dva.cfg.quirks.has(Quirk::ScopeNaamIdOnly);
    let provider_name_only = dva.cfg.quirks.has(Quirk::ScopeProviderNameOnly);
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if (naam_id_only && !token.contains('~')) || (provider_name_only && token != local) {
            return None;
        }
        if token == local {
            // 2.2.x: the provider name covers every Verzamelen service it offers.
            granted.extend(dva.cfg.services.iter().cloned());
        } else if let Some((naam, id)) = token.split_once('~') {
            if naam != local || !dva.cfg.services.iter().any(|s| s == id) {
                return None;
            }
            granted.push(id.to_string());
        } else if dva.cfg.services.iter().any(|s| s == token) {
            granted.push(token.to_string());
        } else {
            return None;
        }
    }
    granted.sort();
    granted.dedup();
    (!granted.is_empty()).then_some(granted)
}

fn valid_redirect(redirect_uri: &str, client_id: &str) -> Result<(), String> {
    let url = url::Url::parse(redirect_uri).map_err(|_| "redirect_uri is not a URI".to_string())?;
    if url.scheme() != "https" {
        return Err("redirect_uri is not https".into());
    }
    if url.host_str() != Some(client_id) {
        return Err("redirect_uri is not on the client's host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("redirect_uri carries a query or fragment".into());
    }
    Ok(())
}

/// GET /oauth/authorize
pub async fn authorize(State(dva): State<Arc<Dva>>, RawQuery(query): RawQuery) -> Response {
    let q = parse_pairs(query.as_deref());
    let quirks = &dva.cfg.quirks;
    if quirks.has(Quirk::RefuseEverything) {
        let mut r = match param(&q, "redirect_uri").filter(|u| url::Url::parse(u).is_ok()) {
            Some(uri) => {
                let mut pairs = vec![("error", "refused"), ("error_description", "geweigerd")];
                if let Some(s) = param(&q, "state") {
                    pairs.push(("state", s));
                }
                found(&with_query(uri, &pairs))
            }
            None => error_page(&dva, "every request is refused"),
        };
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    // An untrusted client_id or redirect_uri gets an error page, never a redirect.
    let untrusted = |why: &str| -> Response {
        let target = param(&q, "redirect_uri").filter(|u| url::Url::parse(u).is_ok());
        match target.filter(|_| quirks.has(Quirk::RedirectsWhereItMustNot)) {
            Some(uri) => error_redirect(&dva, uri, param(&q, "state"), "invalid_request", why),
            None => error_page(&dva, why),
        }
    };
    let client_id = param(&q, "client_id").filter(|c| !c.is_empty());
    let Some(client_id) = client_id.or(quirks.has(Quirk::ClientIdUnchecked).then_some("onbekend"))
    else {
        return untrusted("client_id is missing");
    };
    let organisation = match dva.cfg.ocl.find(client_id) {
        Some(client) => client.organisatienaam.clone(),
        None if quirks.has(Quirk::ClientIdUnchecked) => client_id.to_string(),
        None => return untrusted("client_id is not on the OAuth client list"),
    };
    let Some(redirect_uri) = param(&q, "redirect_uri") else {
        return untrusted("redirect_uri is missing");
    };
    if let Err(why) = valid_redirect(redirect_uri, client_id) {
        if !quirks.has(Quirk::RedirectUriUnchecked) {
            return untrusted(&why);
        }
    }
    let state = param(&q, "state");
    match param(&q, "response_type") {
        _ if quirks.has(Quirk::ResponseTypeUnchecked) => {}
        None => {
            return error_redirect(
                &dva,
                redirect_uri,
                state,
                "invalid_request",
                "response_type ontbreekt",
            );
        }
        Some("code") => {}
        Some(_) => {
            return error_redirect(
                &dva,
                redirect_uri,
                state,
                "unsupported_response_type",
                "alleen response_type=code",
            );
        }
    }
    if state.is_none_or(str::is_empty) && !quirks.has(Quirk::StateNotRequired) {
        return error_redirect(
            &dva,
            redirect_uri,
            None,
            "invalid_request",
            "state ontbreekt",
        );
    }
    for header_param in ["MedMij-Request-ID", "X-Correlation-ID"] {
        if param(&q, header_param).is_none_or(str::is_empty)
            && !quirks.has(Quirk::MedmijHeadersNotRequired)
        {
            return error_redirect(
                &dva,
                redirect_uri,
                state,
                "invalid_request",
                &format!("{header_param} ontbreekt"),
            );
        }
    }
    if dva.stimulated(Stimulus::InvalidScope) {
        return error_redirect(
            &dva,
            redirect_uri,
            state,
            "invalid_scope",
            "deze zorgaanbieder kent deze scope niet (koppeltest: PGO-scenario)",
        );
    }
    let granted = param(&q, "scope").and_then(|s| granted_services(&dva, s));
    let Some(services) = granted.or_else(|| {
        quirks
            .has(Quirk::ScopeUnchecked)
            .then(|| dva.cfg.services.clone())
    }) else {
        return error_redirect(
            &dva,
            redirect_uri,
            state,
            "invalid_scope",
            "scope is onbekend voor deze zorgaanbieder",
        );
    };
    let sid = crate::ids::random_hex(16);
    Dva::lock(&dva.sessions).insert(
        sid.clone(),
        AuthSession {
            client_id: client_id.to_string(),
            organisation: organisation.clone(),
            redirect_uri: redirect_uri.to_string(),
            state: state.map(str::to_string),
            services,
            authn_request_id: None,
            bsn: None,
        },
    );
    let mut r = page(
        StatusCode::OK,
        &format!("{organisation} wil uw gegevens ophalen"),
        &format!(
            "<p>Uw persoonlijke gezondheidsomgeving {org} vraagt gegevens op bij {practice}. Log in om verder te gaan.</p>\
             <form id=\"kt-landing\" method=\"post\" action=\"/oauth/login\"><button type=\"submit\" name=\"login\" value=\"digid\">Inloggen met DigiD</button></form>",
            org = escape(&organisation),
            practice = escape(&dva.cfg.practice),
        ),
    );
    if let Some(trap) = dva
        .stimulus()
        .filter(|s| s.stimulus == Stimulus::HttpRedirect)
        .and_then(|s| s.http_trap.as_deref())
    {
        // The login goes on over plain http: a PGO's browser must not follow.
        r = found(&format!("{trap}/oauth/login"));
    }
    let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; Secure; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// POST /oauth/login: the signed AuthnRequest, auto-posted to the TVS.
pub async fn login(State(dva): State<Arc<Dva>>, headers: HeaderMap) -> Response {
    let Some((sid, _)) = session(&dva, &headers) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sessie verlopen",
            "<p id=\"kt-error\">Geen lopende autorisatie.</p>",
        );
    };
    let Some(sso) = dva.tvs.sso_url.clone() else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Technische storing",
            "<p id=\"kt-error\">TVS metadata has no SSO endpoint.</p>",
        );
    };
    let quirks = &dva.cfg.quirks;
    let cached = quirks
        .has(Quirk::AuthnRequestCached)
        .then(|| Dva::lock(&dva.cached_authn_request).clone())
        .flatten();
    let (request_id, posted) = match cached {
        Some(cached) => cached,
        None => match authn_request(&dva, &sso) {
            Ok(built) => {
                if quirks.has(Quirk::AuthnRequestCached) {
                    *Dva::lock(&dva.cached_authn_request) = Some(built.clone());
                }
                built
            }
            Err(e) => {
                return page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Technische storing",
                    &format!("<p id=\"kt-error\">{}</p>", escape(&e.to_string())),
                );
            }
        },
    };
    if let Some(s) = Dva::lock(&dva.sessions).get_mut(&sid) {
        s.authn_request_id = Some(request_id);
    }
    page(
        StatusCode::OK,
        "Doorsturen naar inloggen",
        &format!(
            "<form id=\"kt-saml-post\" method=\"post\" action=\"{sso}\"><input type=\"hidden\" name=\"SAMLRequest\" value=\"{posted}\">\
             <input type=\"hidden\" name=\"RelayState\" value=\"{relay}\"><noscript><button type=\"submit\">Doorgaan</button></noscript></form>\
             <script>document.forms[0].submit()</script>",
            sso = escape(&sso),
            relay = crate::ids::random_hex(8),
        ),
    )
}

/// A new signed AuthnRequest for the TVS's SSO service at `sso`: its ID and the posted form
/// value, in the shape the quirks give it.
fn authn_request(dva: &Dva, sso: &str) -> Result<(String, String), saml::SamlError> {
    let quirks = &dva.cfg.quirks;
    let request = AuthnRequest {
        id: crate::ids::saml_id(),
        issuer: if quirks.has(Quirk::AuthnRequestWrongIssuer) {
            // The vendor's cluster connection instead of the DV it acts for.
            dva.cfg.entity_id.replacen(":DV:", ":LC:", 1)
        } else {
            dva.cfg.entity_id.clone()
        },
        destination: if quirks.has(Quirk::AuthnRequestNoDestination) {
            String::new()
        } else {
            sso.to_string()
        },
        acs_index: 0,
        requested_loa: requested_loa(dva),
    };
    let shape = saml::AuthnRequestShape {
        algorithm: if quirks.has(Quirk::AuthnRequestSha1) {
            saml::dsig::SignAlg::RsaSha1
        } else {
            saml::dsig::SignAlg::RsaSha256
        },
        acs_url: quirks
            .has(Quirk::AuthnRequestAcsUrl)
            .then(|| dva.cfg.acs_url()),
        comparison: if quirks.has(Quirk::AuthnRequestComparisonExact) {
            saml::Comparison::Exact
        } else {
            saml::Comparison::Minimum
        },
        issued_ago: if quirks.has(Quirk::AuthnRequestStale) {
            time::Duration::minutes(10)
        } else {
            time::Duration::ZERO
        },
    };
    let posted = request.to_post_binding_with(&dva.signing, &shape)?;
    Ok((request.id, posted))
}

/// The level the AuthnRequest asks for: the row's minimum, unless a quirk asks for midden.
fn requested_loa(dva: &Dva) -> saml::Loa {
    if dva.cfg.quirks.has(Quirk::AuthnRequestLoaMidden) {
        saml::Loa::Low
    } else {
        dva.cfg.min_loa
    }
}

/// GET /saml/acs?SAMLart=…: resolve the artifact at the TVS and verify what comes back.
pub async fn assertion_consumer(
    State(dva): State<Arc<Dva>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((sid, sess)) = session(&dva, &headers) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sessie verlopen",
            "<p id=\"kt-error\">Geen lopende autorisatie.</p>",
        );
    };
    let q = parse_pairs(query.as_deref());
    let state = sess.state.as_deref();
    let Some(artifact) = param(&q, "SAMLart") else {
        return error_redirect(
            &dva,
            &sess.redirect_uri,
            state,
            "access_denied",
            "inloggen mislukt: geen artifact",
        );
    };
    let Some(authn_id) = sess.authn_request_id.clone() else {
        return error_redirect(
            &dva,
            &sess.redirect_uri,
            state,
            "access_denied",
            "inloggen mislukt: geen AuthnRequest",
        );
    };
    let login = match resolve_artifact(&dva, artifact, &authn_id).await {
        Ok(login) => login,
        Err(LoginFailure::Cancelled) if dva.cfg.quirks.has(Quirk::CancelDeadEnd) => {
            return page(
                StatusCode::OK,
                "Inloggen geannuleerd",
                "<p id=\"kt-error\">U heeft het inloggen geannuleerd.</p>",
            );
        }
        Err(LoginFailure::Cancelled) => {
            return error_redirect(
                &dva,
                &sess.redirect_uri,
                state,
                "access_denied",
                "inloggen geannuleerd",
            );
        }
        Err(failure) => {
            dva.note(format!("SAML login refused: {failure}"));
            // The weakness: the reason, bad padding or bad content, told to the PGO.
            let description = if dva.cfg.quirks.has(Quirk::SamlDecryptionErrorDetailed) {
                format!("inloggen mislukt: {failure}")
            } else {
                "inloggen mislukt".to_string()
            };
            return error_redirect(
                &dva,
                &sess.redirect_uri,
                state,
                "access_denied",
                &description,
            );
        }
    };
    // Beschikbaarheidstoets: only continue for a person this practice holds data for.
    if dva.cfg.patients.get(&login.bsn).is_none()
        && !dva.cfg.quirks.has(Quirk::AvailabilityUnchecked)
    {
        return error_redirect(
            &dva,
            &sess.redirect_uri,
            state,
            "access_denied",
            "geen gegevens beschikbaar voor deze persoon",
        );
    }
    if let Some(s) = Dva::lock(&dva.sessions).get_mut(&sid) {
        s.bsn = Some(login.bsn.clone());
        // The AuthnRequest is spent: a replayed artifact cannot log in again.
        s.authn_request_id = None;
    }
    page(
        StatusCode::OK,
        "Toestemming",
        &format!(
            "<p id=\"kt-consent-text\">Geeft u {org} toestemming om uw huisartsgegevens bij {practice} op te halen?</p>\
             <form id=\"kt-consent\" method=\"post\" action=\"/oauth/consent\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\">Toestaan</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Weigeren</button></form>",
            org = escape(&sess.organisation),
            practice = escape(&dva.cfg.practice),
        ),
    )
}

async fn resolve_artifact(
    dva: &Dva,
    artifact: &str,
    authn_id: &str,
) -> Result<saml::Login, LoginFailure> {
    let refused = |s: String| LoginFailure::Refused(s);
    let quirks = &dva.cfg.quirks;
    if quirks.has(Quirk::ArtifactReplayAccepted) {
        // The weakness: a login once resolved is served again for the same artifact.
        if let Some(login) = Dva::lock(&dva.resolved).get(artifact).cloned() {
            return Ok(login);
        }
    }
    // SAML bindings §3.6.4: the SourceID names the issuer; an artifact from an issuer we do not
    // know is never sent anywhere.
    if !quirks.has(Quirk::ArtifactSourceUnchecked)
        && !saml::artifact_from(artifact, &dva.tvs.entity_id)
    {
        return Err(refused(
            "the artifact's SourceID is not the TVS's: not resolved".into(),
        ));
    }
    let ars = dva
        .tvs
        .artifact_resolution_url
        .clone()
        .ok_or_else(|| refused("TVS metadata has no ArtifactResolutionService".into()))?;
    let signer = (!quirks.has(Quirk::ArtifactResolveUnsigned)).then_some(&*dva.signing);
    let (resolve_id, envelope) =
        saml::artifact_resolve_with(&dva.cfg.entity_id, &ars, artifact, signer)
            .map_err(|e| refused(e.to_string()))?;
    // The mock TVS records this exchange as the witness of the login; the DVA, the party
    // under test, keeps no account of its own that a check could lean on.
    let send = |envelope: String| {
        dva.soap
            .post(&ars)
            .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header(
                "SOAPAction",
                "http://www.oasis-open.org/committees/security",
            )
            .body(envelope)
            .send()
    };
    let sent = send(envelope.clone()).await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Err(refused(format!(
                "artifact resolution failed to reach the TVS: {}",
                crate::tls::error_chain(&e)
            )));
        }
    };
    let body = crate::tls::read_limited(resp, 1 << 20)
        .await
        .map_err(&refused)?;
    let mut body = String::from_utf8_lossy(&body).into_owned();
    if quirks.has(Quirk::ArtifactResolvedTwice) {
        // The retry: the same request once more, its answer read and dropped.
        if let Ok(again) = send(envelope).await {
            let _ = crate::tls::read_limited(again, 1 << 20).await;
        }
    }
    if quirks.has(Quirk::SamlExternalEntitiesResolved) {
        body = inline_external_entities(dva, &body).await;
    }
    let policy = AssertionPolicy {
        idp_signing_certs: &dva.tvs.signing_certs,
        idp_entity: &dva.tvs.entity_id,
        own_entity: &dva.cfg.entity_id,
        acs_url: &dva.cfg.acs_url(),
        expected_in_response_to: authn_id,
        expected_artifact_resolve_id: &resolve_id,
        min_loa: dva.cfg.min_loa,
        decryption_key: &dva.encryption,
        now: dva.cfg.clock.utc(),
        check_signatures: !quirks.has(Quirk::SamlSignatureUnchecked),
        check_audience: !quirks.has(Quirk::SamlAudienceUnchecked),
        check_loa: !quirks.has(Quirk::LoaUnchecked),
        check_subject_confirmation: !quirks.has(Quirk::AcceptEverything),
        lax: sp_lax(quirks),
    };
    match saml::consume_artifact_response(&body, &policy) {
        // Every login is accepted, even a cancelled or unreadable one: as the default person.
        Err(_) if quirks.has(Quirk::AcceptEverything) => Ok(saml::Login {
            bsn: ANYONE.to_string(),
            loa: dva.cfg.min_loa,
        }),
        Ok(login) if quirks.has(Quirk::LoaExactMatch) && login.loa != requested_loa(dva) => {
            Err(LoginFailure::Refused(format!(
                "level of assurance {} is not the one requested ({})",
                login.loa.uri(),
                requested_loa(dva).uri()
            )))
        }
        Ok(login) if quirks.has(Quirk::LoaMinimumExclusive) && login.loa <= dva.cfg.min_loa => {
            Err(LoginFailure::LoaTooLow(format!(
                "{} is not above {}",
                login.loa.uri(),
                dva.cfg.min_loa.uri()
            )))
        }
        Ok(login) => {
            if quirks.has(Quirk::ArtifactReplayAccepted) {
                Dva::lock(&dva.resolved).insert(artifact.to_string(), login.clone());
            }
            Ok(login)
        }
        other => other,
    }
}

/// The assertion consumer's weaknesses this DVA's quirks switch on (none: the strict SP).
fn sp_lax(quirks: &super::quirks::Quirks) -> saml::SpLax {
    let q = |x| quirks.has(x);
    saml::SpLax {
        signature: saml::dsig::SigLax {
            sha1: q(Quirk::SamlSha1Accepted),
            key_info_trusted: q(Quirk::SamlKeyInfoTrusted),
            signed_info_split: q(Quirk::SamlSignedInfoSplit),
            digest_first_child: q(Quirk::SamlDigestFirstChild),
            reference_searched: q(Quirk::SamlReferenceSearched),
            objects_allowed: q(Quirk::SamlDataFromDescendants),
        },
        decryption: saml::xmlenc::DecryptLax {
            rsa_1_5: q(Quirk::SamlRsa15Accepted),
            recipient_unchecked: q(Quirk::SamlKeyRecipientUnchecked),
            method_assumed: q(Quirk::SamlEncryptionMethodAssumed),
        },
        assertion_signature_optional: q(Quirk::SamlAssertionSignatureOptional),
        message_signature_optional: q(Quirk::SamlMessageSignatureOptional),
        signature_detached: q(Quirk::SamlSignatureDetached),
        last_assertion_read: q(Quirk::SamlLastAssertionRead),
        data_from_descendants: q(Quirk::SamlDataFromDescendants),
        doctype_accepted: q(Quirk::SamlDoctypeAccepted) || q(Quirk::SamlExternalEntitiesResolved),
        name_id_by_string_search: q(Quirk::SamlNameIdByStringSearch),
        not_before_unchecked: q(Quirk::SamlNotBeforeUnchecked),
        expiry_unchecked: q(Quirk::SamlExpiryUnchecked),
        in_response_to_unchecked: q(Quirk::SamlInResponseToUnchecked),
        unsolicited_accepted: q(Quirk::SamlUnsolicitedAccepted),
        recipient_unchecked: q(Quirk::SamlRecipientUnchecked),
        audience_optional: q(Quirk::SamlAudienceOptional),
        destination_unchecked: q(Quirk::SamlDestinationUnchecked),
        issuer_unchecked: q(Quirk::SamlIssuerUnchecked),
        status_unchecked: q(Quirk::SamlStatusUnchecked),
    }
}

/// [`Quirk::SamlExternalEntitiesResolved`]: the DOCTYPE's external entities are fetched (with
/// the back-channel client; at most four, 64 KiB and the client's time-out each) and written back as
/// internal ones, as a parser that resolves external entities would. Deliberately vulnerable.
async fn inline_external_entities(dva: &Dva, xml: &str) -> String {
    let Some(start) = xml.find("<!DOCTYPE") else {
        return xml.to_string();
    };
    let Some(end) = xml[start..].find("]>").map(|e| start + e) else {
        return xml.to_string();
    };
    let mut doctype = xml[start..end].to_string();
    // Vulnerable, but bounded: at most four entities, each within the client's time-out.
    let mut fetched = 0;
    while let Some(at) = doctype.find(" SYSTEM \"").filter(|_| fetched < 4) {
        fetched += 1;
        let url_start = at + " SYSTEM \"".len();
        let Some(url_len) = doctype[url_start..].find('"') else {
            break;
        };
        let url = doctype[url_start..url_start + url_len].replace("&amp;", "&");
        let text = match dva.soap.get(&url).send().await {
            Ok(r) => crate::tls::read_limited(r, 64 << 10)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        doctype.replace_range(
            at..url_start + url_len + 1,
            &format!(" \"{}\"", saml::escape(&text)),
        );
    }
    format!("{}{doctype}{}", &xml[..start], &xml[end..])
}

/// POST /oauth/consent
pub async fn consent(State(dva): State<Arc<Dva>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((sid, sess)) = session(&dva, &headers) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sessie verlopen",
            "<p id=\"kt-error\">Geen lopende autorisatie.</p>",
        );
    };
    let form = parse_pairs(std::str::from_utf8(&body).ok());
    let state = sess.state.as_deref();
    let Some(bsn) = sess.bsn.clone() else {
        return error_page(&dva, "consent without a completed login");
    };
    // The session ends here, whatever the decision.
    Dva::lock(&dva.sessions).remove(&sid);
    if dva.stimulated(Stimulus::AccessDenied)
        || (param(&form, "decision") != Some("approve")
            && !dva.cfg.quirks.has(Quirk::ConsentIgnored))
    {
        return error_redirect(
            &dva,
            &sess.redirect_uri,
            state,
            "access_denied",
            "toestemming geweigerd",
        );
    }
    let code = crate::ids::random_hex(24);
    Dva::lock(&dva.codes).insert(
        code.clone(),
        CodeGrant {
            client_id: sess.client_id.clone(),
            redirect_uri: sess.redirect_uri.clone(),
            bsn,
            services: sess.services.clone(),
            issued: dva.cfg.clock.instant(),
            used: false,
            issued_tokens: Vec::new(),
        },
    );
    let mut pairs = vec![("code", code.as_str())];
    let echoed = match (
        dva.cfg.quirks.has(Quirk::StateFixed),
        dva.cfg.quirks.has(Quirk::StateNotEchoed),
    ) {
        (true, _) => Some("koppeltest"),
        (false, true) => None,
        (false, false) => state,
    };
    // A state the PGO never sent: it must not exchange this code.
    let foreign = crate::ids::random_hex(16);
    let echoed = if dva.stimulated(Stimulus::WrongState) {
        Some(foreign.as_str())
    } else {
        echoed
    };
    if let Some(s) = echoed {
        pairs.push(("state", s));
    }
    found(&with_query(&sess.redirect_uri, &pairs))
}

/// GET /saml/metadata
pub async fn metadata(State(dva): State<Arc<Dva>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        dva.metadata_xml.clone(),
    )
        .into_response()
}

fn token_error(dva: &Dva, status: StatusCode, code: &'static str, description: &str) -> Response {
    dva.note(format!("token request refused: {code}: {description}"));
    let body =
        json!({ "error": error_code(&dva.cfg.quirks, code), "error_description": description });
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Issues an access token and a refresh token (or, when `keep_refresh` is given, reissues that
/// one unchanged). Returns the response and the two token values.
fn issue_tokens(
    dva: &Dva,
    grant: TokenGrant,
    keep_refresh: Option<String>,
) -> (Response, String, String) {
    let access = crate::ids::random_hex(32);
    let refresh = keep_refresh.unwrap_or_else(|| crate::ids::random_hex(32));
    let lifetimes = dva.cfg.lifetimes;
    let scope = grant.services.join(" ");
    Dva::lock(&dva.access).insert(
        access.clone(),
        TokenGrant {
            expires: dva.cfg.clock.deadline(lifetimes.access_token),
            ..grant.clone()
        },
    );
    Dva::lock(&dva.refresh).insert(
        refresh.clone(),
        TokenGrant {
            expires: dva.cfg.clock.deadline(lifetimes.refresh_token),
            ..grant
        },
    );
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetimes.access_token.as_secs(),
        "refresh_token": refresh,
        "scope": scope,
    });
    let mut body = body;
    if dva.stimulated(Stimulus::ExtraField)
        && let Some(o) = body.as_object_mut()
    {
        // Members MedMij does not define: a PGO must ignore them.
        o.insert("koppeltest_extra".into(), json!({ "unknown": [1, 2, 3] }));
        o.insert("id_token".into(), json!("niet-van-toepassing"));
    }
    if dva.cfg.quirks.has(Quirk::TokenScopeMissing) {
        if let Some(o) = body.as_object_mut() {
            o.remove("scope");
        }
    }
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    if !dva.cfg.quirks.has(Quirk::TokenResponseCacheable) {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    (r, access, refresh)
}

/// POST /oauth/token (back channel, mutual TLS)
pub async fn token(
    State(dva): State<Arc<Dva>>,
    Extension(peer): Extension<PeerCertificates>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let quirks = &dva.cfg.quirks;
    if quirks.has(Quirk::SlowTokenEndpoint) {
        tokio::time::sleep(SLOW_ANSWER).await;
    }
    if quirks.has(Quirk::TokenSlow1In50) && dva.cfg.availability.next_token_spoiled(50) {
        tokio::time::sleep(dva.cfg.slow_answer).await;
    }
    if quirks.has(Quirk::RefuseTokens) {
        return token_error(
            &dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "elk verzoek wordt geweigerd",
        );
    }
    let legacy = quirks.has(Quirk::LegacyTokenRequestAccepted);
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut form = parse_pairs(std::str::from_utf8(&body).ok());
    if legacy {
        // What old libraries do: parameters in the query string, the body empty or absent.
        form.extend(parse_pairs(query.as_deref()));
    } else {
        if !form_type.starts_with("application/x-www-form-urlencoded") {
            return token_error(
                &dva,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "de body moet application/x-www-form-urlencoded zijn",
            );
        }
        if query.as_deref().is_some_and(|q| !q.is_empty()) {
            return token_error(
                &dva,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "parameters horen in de body, niet in de query",
            );
        }
    }
    // RFC 8705 §2: the TLS client certificate authenticates the client and must belong to it.
    let names = peer.dns_names();
    let client_id = match param(&form, "client_id").filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None if legacy && !names.is_empty() => names[0].clone(),
        None => {
            return token_error(
                &dva,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_id ontbreekt",
            );
        }
    };
    let cert_ok = names.contains(&client_id)
        || (names.is_empty() && quirks.has(Quirk::ClientCertNotRequired))
        || (!names.is_empty() && quirks.has(Quirk::ClientCertNameUnchecked));
    if !cert_ok {
        return token_error(
            &dva,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "het clientcertificaat hoort niet bij client_id",
        );
    }
    match param(&form, "grant_type") {
        Some("authorization_code") => code_grant(&dva, &form, &client_id),
        Some("refresh_token") => refresh_grant(&dva, &form, &client_id),
        Some(_) if quirks.has(Quirk::WrongGrantTypeAccepted) => {
            refresh_grant(&dva, &form, &client_id)
        }
        Some(_) => token_error(
            &dva,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type wordt niet ondersteund",
        ),
        None => token_error(
            &dva,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type ontbreekt",
        ),
    }
}

fn code_grant(dva: &Dva, form: &[(String, String)], client_id: &str) -> Response {
    let quirks = &dva.cfg.quirks;
    let Some(code) = param(form, "code") else {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code ontbreekt",
        );
    };
    let grant = {
        let mut codes = Dva::lock(&dva.codes);
        let lenient = quirks.has(Quirk::AcceptEverything).then(|| CodeGrant {
            client_id: client_id.to_string(),
            redirect_uri: param(form, "redirect_uri").unwrap_or_default().to_string(),
            bsn: ANYONE.to_string(),
            services: dva.cfg.services.clone(),
            issued: dva.cfg.clock.instant(),
            used: false,
            issued_tokens: Vec::new(),
        });
        if let Some(any) = lenient.filter(|_| !codes.contains_key(code)) {
            codes.insert(code.to_string(), any);
        }
        let Some(grant) = codes.get_mut(code) else {
            return token_error(
                dva,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "onbekende code",
            );
        };
        if grant.used && !quirks.has(Quirk::CodeReplayAccepted) {
            // RFC 6749 §4.1.2: a replayed code should also revoke what it bought.
            if !quirks.has(Quirk::ReplayKeepsTokens) {
                for t in grant.issued_tokens.drain(..) {
                    Dva::lock(&dva.access).remove(&t);
                    Dva::lock(&dva.refresh).remove(&t);
                }
            }
            return token_error(
                dva,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "code is al gebruikt",
            );
        }
        // Voided on first presentation, whatever happens next (core.tknint.204).
        grant.used = true;
        grant.clone()
    };
    if dva.cfg.clock.since(grant.issued) > dva.cfg.lifetimes.code
        && !quirks.has(Quirk::CodeExpiryUnchecked)
    {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code is verlopen",
        );
    }
    if grant.client_id != client_id && !quirks.has(Quirk::CodeNotBoundToClient) {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code is voor een andere client uitgegeven",
        );
    }
    let presented = param(form, "redirect_uri");
    let decoded_again = presented.map(|p| {
        url::form_urlencoded::parse(format!("r={p}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect::<String>()
    });
    let redirect_ok = presented == Some(grant.redirect_uri.as_str())
        || quirks.has(Quirk::RedirectUriNotCompared)
        || (quirks.has(Quirk::RedirectUriDecodedTwice)
            && decoded_again.as_deref() == Some(grant.redirect_uri.as_str()));
    if !redirect_ok {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri ontbreekt of wijkt af",
        );
    }
    let (response, access, refresh) = issue_tokens(
        dva,
        TokenGrant {
            client_id: client_id.to_string(),
            bsn: grant.bsn,
            services: grant.services,
            expires: dva.cfg.clock.instant(),
        },
        None,
    );
    if let Some(g) = Dva::lock(&dva.codes).get_mut(code) {
        g.issued_tokens.extend([access, refresh]);
    }
    response
}

fn refresh_grant(dva: &Dva, form: &[(String, String)], client_id: &str) -> Response {
    let Some(token) = param(form, "refresh_token") else {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token ontbreekt",
        );
    };
    if dva.stimulated(Stimulus::RefreshRefused) {
        Dva::lock(&dva.refresh).remove(token);
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "de toestemming is ingetrokken",
        );
    }
    let rotate = !dva.cfg.quirks.has(Quirk::RefreshNotRotated);
    // Rotation: the presented refresh token dies now.
    let grant = if rotate {
        Dva::lock(&dva.refresh).remove(token)
    } else {
        Dva::lock(&dva.refresh).get(token).cloned()
    };
    let Some(grant) = grant else {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "onbekende of gebruikte refresh_token",
        );
    };
    if grant.expires < dva.cfg.clock.instant() {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh_token is verlopen",
        );
    }
    if grant.client_id != client_id {
        return token_error(
            dva,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh_token hoort bij een andere client",
        );
    }
    let keep = (!rotate).then(|| token.to_string());
    issue_tokens(dva, grant, keep).0
}

/// What [`Quirk::BearerUnchecked`] grants a request without a valid token.
fn anyone(dva: &Dva) -> TokenGrant {
    TokenGrant {
        client_id: String::new(),
        bsn: ANYONE.to_string(),
        services: dva.cfg.services.clone(),
        expires: dva.cfg.clock.deadline(dva.cfg.lifetimes.access_token),
    }
}

/// The token of an `Authorization: Bearer …` value (the scheme is case-insensitive).
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    value
        .split_at_checked(7)
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer "))
        .map(|(_, token)| token)
}

/// Looks up a bearer token for the resource endpoint.
pub(super) fn bearer(dva: &Dva, headers: &HeaderMap) -> Result<TokenGrant, &'static str> {
    if dva.cfg.quirks.has(Quirk::RefuseResources) {
        return Err("every request is refused");
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let value = match value {
        None if dva.cfg.quirks.has(Quirk::BearerUnchecked) => return Ok(anyone(dva)),
        other => other.ok_or("no bearer token")?,
    };
    let token = bearer_token(value).ok_or("authorization is not a bearer token")?;
    let grant = Dva::lock(&dva.access).get(token.trim()).cloned();
    let grant = match grant {
        None if dva.cfg.quirks.has(Quirk::BearerUnchecked) => anyone(dva),
        other => other.ok_or("unknown token")?,
    };
    if grant.expires < dva.cfg.clock.instant() && !dva.cfg.quirks.has(Quirk::TokenExpiryUnchecked) {
        return Err("token expired");
    }
    Ok(grant)
}
