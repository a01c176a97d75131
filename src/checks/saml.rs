//! The DVA's own SAML messages, judged as the mock TVS received them: the AuthnRequest the
//! browser posted to the TVS's SSO service, and the ArtifactResolve the DVA sent over the back
//! channel (the TVS's witness record, with the client certificate it presented). Also the
//! DVA's decision on a login at a given level of assurance, against the row's minimum.
//!
//! **Boundary:** nothing here uses `crate::saml`, which builds and reads these messages for the
//! simulated DVA and the mock TVS, the parties judged. The recorded XML is read again, with
//! roxmltree and base64, by rules written down here a second time (namespaces, algorithms, the
//! order of the levels), so a mistake in the parties' SAML code cannot hide itself.
//!
//! It judges shape and content, not cryptography: the mock TVS verifies the signatures; a
//! check here fails a message that is unsigned, signed with SHA-1, or signed so that the
//! signature does not plainly cover the message itself.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::{Document, Node};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::*;

const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Signature methods of RSA-SHA256 strength or more (PKCS#1 v1.5 and PSS).
const STRONG_SIGNATURES: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
    "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
];

/// Digest methods of SHA-256 strength or more.
const STRONG_DIGESTS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// The eID levels of assurance in increasing order (eID SAML 4.4 §10.3): basis, midden,
/// substantieel, hoog.
const LEVELS: &[(&str, &str)] = &[
    ("http://eID.logius.nl/LoA/basic", "basis"),
    ("http://eidas.europa.eu/LoA/low", "midden"),
    ("http://eidas.europa.eu/LoA/substantial", "substantieel"),
    ("http://eidas.europa.eu/LoA/high", "hoog"),
];

/// How far a message's IssueInstant may be from the moment it was recorded. [U] eID SAML names
/// no skew; a few minutes is what SAML stacks allow for clocks.
const ALLOWED_SKEW_S: i64 = 180;

fn rank(uri: &str) -> Option<usize> {
    LEVELS.iter().position(|(u, _)| *u == uri)
}

fn level_name(uri: &str) -> String {
    LEVELS
        .iter()
        .find(|(u, _)| *u == uri)
        .map_or_else(|| format!("{uri:?}"), |(_, n)| n.to_string())
}

fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == local
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'a str,
    local: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| is(*c, ns, local))
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &'a str, local: &'a str) -> Option<Node<'a, 'i>> {
    children(node, ns, local).next()
}

/// The whole text content, comments left out, trimmed.
fn text(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_string()
}

/// One message the DVA sent, as recorded: its exchange and its XML (or why it is unreadable).
struct Recorded<'x> {
    exchange: &'x Exchange,
    xml: Result<String, String>,
}

/// The AuthnRequests the browser posted to the mock TVS (HTTP-POST binding), in `step` or, with
/// `None`, in the whole scenario.
fn posted_authn_requests<'x>(exchanges: &'x [Exchange], step: Option<&str>) -> Vec<Recorded<'x>> {
    exchanges
        .iter()
        .filter(|x| step.is_none() || x.step.as_deref() == step)
        .filter(|x| x.from == Party::Browser && x.to == Party::Tvs && x.method == "POST")
        .filter_map(|x| {
            let body = x.request_body.as_deref()?;
            let value = url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "SAMLRequest")
                .map(|(_, v)| v.into_owned())?;
            let xml = B64
                .decode(value.split_whitespace().collect::<String>())
                .map_err(|_| "the SAMLRequest is not base64".to_string())
                .and_then(|raw| {
                    String::from_utf8(raw).map_err(|_| "the SAMLRequest is not UTF-8".to_string())
                });
            Some(Recorded { exchange: x, xml })
        })
        .collect()
}

/// The ArtifactResolves the mock TVS recorded as its witness, in `step` or in the whole scenario.
fn artifact_resolves<'x>(exchanges: &'x [Exchange], step: Option<&str>) -> Vec<Recorded<'x>> {
    exchanges
        .iter()
        .filter(|x| step.is_none() || x.step.as_deref() == step)
        .filter(|x| x.from == Party::Dva && x.to == Party::Tvs && x.method == "POST")
        .filter_map(|x| {
            let body = x.request_body.as_deref()?;
            body.contains("ArtifactResolve").then(|| Recorded {
                exchange: x,
                xml: Ok(body.to_string()),
            })
        })
        .collect()
}

fn parse(xml: &str) -> Result<Document<'_>, String> {
    // roxmltree refuses a DOCTYPE by default: a message with one is unreadable here, as it
    // must be to a TVS.
    Document::parse(xml).map_err(|e| format!("not well-formed XML without a DOCTYPE ({e})"))
}

/// The message element of a recorded AuthnRequest (the root).
fn authn_request_root<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, String> {
    let root = doc.root_element();
    if is(root, NS_SAMLP, "AuthnRequest") {
        Ok(root)
    } else {
        Err(format!(
            "the SAMLRequest is a {{{}}}{}, not a samlp:AuthnRequest",
            root.tag_name().namespace().unwrap_or(""),
            root.tag_name().name()
        ))
    }
}

/// The ArtifactResolve inside a recorded SOAP envelope.
fn artifact_resolve_element<'a, 'i>(doc: &'a Document<'i>) -> Result<Node<'a, 'i>, String> {
    let envelope = doc.root_element();
    let body = child(envelope, NS_SOAP, "Body")
        .filter(|_| is(envelope, NS_SOAP, "Envelope"))
        .ok_or("not a SOAP 1.1 envelope with a Body")?;
    body.children()
        .find(|c| is(*c, NS_SAMLP, "ArtifactResolve"))
        .ok_or_else(|| "the SOAP Body holds no samlp:ArtifactResolve".to_string())
}

/// What is wrong with the enveloped signature of `el`, the message itself (`None`: nothing).
/// Shape only, not cryptography: one `ds:Signature`, a direct child, one `SignedInfo` with a
/// signature method of RSA-SHA256 strength or more, one `Reference` to `el`'s own ID with a
/// SHA-256-or-stronger digest, and a SignatureValue.
fn signature_problem(el: Node<'_, '_>) -> Option<String> {
    let name = el.tag_name().name();
    let Some(id) = el.attribute("ID").filter(|i| !i.is_empty()) else {
        return Some(format!("the {name} has no ID for a signature to refer to"));
    };
    let signatures: Vec<Node> = children(el, NS_DS, "Signature").collect();
    match signatures.len() {
        0 if el.descendants().any(|n| is(n, NS_DS, "Signature")) => {
            return Some(format!(
                "the {name}'s ds:Signature is not a direct child of the message"
            ));
        }
        0 => return Some(format!("the {name} is unsigned: no ds:Signature")),
        1 => {}
        n => return Some(format!("the {name} carries {n} ds:Signature elements")),
    }
    let signature = signatures[0];
    let signed_infos: Vec<Node> = children(signature, NS_DS, "SignedInfo").collect();
    let [signed_info] = signed_infos.as_slice() else {
        return Some(format!(
            "the {name}'s signature has {} SignedInfo elements, not one",
            signed_infos.len()
        ));
    };
    let method = child(*signed_info, NS_DS, "SignatureMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if !STRONG_SIGNATURES.contains(&method) {
        return Some(if method.to_ascii_lowercase().contains("sha1") {
            format!(
                "the {name} is signed with {method}: SHA-1 is not allowed, RSA-SHA256 or stronger is"
            )
        } else {
            format!("the {name} is signed with {method:?}, not RSA-SHA256 or stronger")
        });
    }
    let references: Vec<Node> = children(*signed_info, NS_DS, "Reference").collect();
    let [reference] = references.as_slice() else {
        return Some(format!(
            "the {name}'s signature has {} References, not one",
            references.len()
        ));
    };
    let uri = reference.attribute("URI").unwrap_or("");
    if uri != format!("#{id}") {
        return Some(format!(
            "the {name}'s signature refers to {uri:?}, not to the message's own ID {id:?}"
        ));
    }
    let digest = child(*reference, NS_DS, "DigestMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("");
    if !STRONG_DIGESTS.contains(&digest) {
        return Some(format!(
            "the {name}'s signature digests with {digest:?}, not SHA-256 or stronger"
        ));
    }
    if child(signature, NS_DS, "SignatureValue").is_none_or(|v| text(v).is_empty()) {
        return Some(format!("the {name}'s signature has no SignatureValue"));
    }
    None
}

/// Judges every recorded message with `judge` (`Err` for a problem): `pass` with `passed` when
/// each is right, `fail` with the first problem, `error` when there is nothing to judge.
fn judge_each(
    recorded: Vec<Recorded<'_>>,
    none: String,
    passed: &str,
    judge: impl Fn(&Recorded<'_>, &str) -> Result<(), String>,
) -> Verdict {
    if recorded.is_empty() {
        return v(Outcome::Error, none, vec![]);
    }
    let evidence: Vec<usize> = recorded.iter().map(|r| r.exchange.seq).collect();
    for r in &recorded {
        let outcome = match &r.xml {
            Ok(xml) => judge(r, xml),
            Err(why) => Err(why.clone()),
        };
        if let Err(problem) = outcome {
            return v(
                Outcome::Fail,
                format!("{problem} (exchange {})", r.exchange.seq),
                vec![r.exchange.seq],
            );
        }
    }
    v(Outcome::Pass, passed, evidence)
}

fn no_authn_request(step: &str) -> String {
    format!(
        "could not judge the AuthnRequest: the browser posted none to the mock TVS in step {step:?} (the DVA started no login)"
    )
}

fn no_artifact_resolve(step: &str) -> String {
    format!(
        "could not judge the ArtifactResolve: the mock TVS recorded none in step {step:?} (the DVA never resolved an artifact)"
    )
}

/// The checks of the DVA's own SAML messages that every login gets, whether or not its scenario
/// names them: for each authorize step in which the browser posted an AuthnRequest to the mock
/// TVS, the six AuthnRequest checks; where the mock TVS also recorded an ArtifactResolve in that
/// step, the three ArtifactResolve checks. A check the scenario already declares for the step is
/// not added twice. A step without a login gets none, so a scenario whose login never started (a
/// refused authorization request) is not turned into an `error` by checks it never asked for;
/// declared explicitly, the same checks are an `error` there.
pub fn per_login(scenario: &Scenario, exchanges: &[Exchange]) -> Vec<CheckSpec> {
    let mut added = Vec::new();
    for step in &scenario.steps {
        let Step::Authorize(a) = step else { continue };
        let id = a.id.clone();
        let mut kinds: Vec<CheckSpec> = Vec::new();
        if !posted_authn_requests(exchanges, Some(&id)).is_empty() {
            kinds.extend([
                CheckSpec::AuthnRequestSigned { step: id.clone() },
                CheckSpec::AuthnRequestAcsIndex { step: id.clone() },
                CheckSpec::AuthnRequestIssuer { step: id.clone() },
                CheckSpec::AuthnRequestDestination { step: id.clone() },
                CheckSpec::AuthnRequestLoa { step: id.clone() },
                CheckSpec::AuthnRequestFresh { step: id.clone() },
            ]);
        }
        if !artifact_resolves(exchanges, Some(&id)).is_empty() {
            kinds.extend([
                CheckSpec::ArtifactResolveSigned { step: id.clone() },
                CheckSpec::ArtifactResolveMutualTls { step: id.clone() },
                CheckSpec::ArtifactResolvedOnce { step: id.clone() },
            ]);
        }
        added.extend(kinds.into_iter().filter(|k| {
            !scenario
                .checks
                .iter()
                .any(|c| c.kind() == k.kind() && c.step() == k.step())
        }));
    }
    added
}

/// The AuthnRequest is signed, enveloped, with RSA-SHA256 or stronger.
pub(super) fn authn_request_signed(step: &str, ctx: &Context<'_>) -> Verdict {
    judge_each(
        posted_authn_requests(ctx.exchanges, Some(step)),
        no_authn_request(step),
        "the AuthnRequest carries an enveloped RSA-SHA256 (or stronger) signature over its own ID",
        |_, xml| {
            let doc = parse(xml)?;
            match signature_problem(authn_request_root(&doc)?) {
                Some(problem) => Err(problem),
                None => Ok(()),
            }
        },
    )
}

/// The AuthnRequest names the assertion consumer service by index, never by URL.
pub(super) fn authn_request_acs_index(step: &str, ctx: &Context<'_>) -> Verdict {
    judge_each(
        posted_authn_requests(ctx.exchanges, Some(step)),
        no_authn_request(step),
        "the AuthnRequest names its assertion consumer service by AssertionConsumerServiceIndex, without a URL",
        |_, xml| {
            let doc = parse(xml)?;
            let root = authn_request_root(&doc)?;
            if let Some(url) = root.attribute("AssertionConsumerServiceURL") {
                return Err(format!(
                    "the AuthnRequest carries AssertionConsumerServiceURL {url:?}, which eID SAML forbids"
                ));
            }
            match root.attribute("AssertionConsumerServiceIndex") {
                None => Err("the AuthnRequest has no AssertionConsumerServiceIndex".into()),
                Some(i) if i.parse::<u16>().is_err() => Err(format!(
                    "AssertionConsumerServiceIndex {i:?} is not an index"
                )),
                Some(_) => Ok(()),
            }
        },
    )
}

/// The AuthnRequest's Issuer is the DV's registered entityID.
pub(super) fn authn_request_issuer(step: &str, ctx: &Context<'_>) -> Verdict {
    let Some(expected) = ctx.saml.dv_entity_id.as_deref() else {
        return v(
            Outcome::Error,
            "the row names no registered entityID to compare the Issuer with",
            vec![],
        );
    };
    judge_each(
        posted_authn_requests(ctx.exchanges, Some(step)),
        no_authn_request(step),
        &format!("the AuthnRequest's Issuer is the registered entityID {expected}"),
        |_, xml| {
            let doc = parse(xml)?;
            let root = authn_request_root(&doc)?;
            let issuers: Vec<Node> = children(root, NS_SAML, "Issuer").collect();
            match issuers.as_slice() {
                [] => Err("the AuthnRequest has no saml:Issuer".into()),
                [issuer] if text(*issuer) == expected => Ok(()),
                [issuer] => Err(format!(
                    "the AuthnRequest's Issuer is {:?}, not the registered entityID {expected:?}",
                    text(*issuer)
                )),
                _ => Err("the AuthnRequest has more than one saml:Issuer".into()),
            }
        },
    )
}

/// The AuthnRequest's Destination is the TVS's SSO URL.
pub(super) fn authn_request_destination(step: &str, ctx: &Context<'_>) -> Verdict {
    let Some(expected) = ctx.saml.tvs_sso_url.as_deref() else {
        return v(
            Outcome::Error,
            "the row names no TVS SSO URL to compare the Destination with",
            vec![],
        );
    };
    judge_each(
        posted_authn_requests(ctx.exchanges, Some(step)),
        no_authn_request(step),
        &format!("the AuthnRequest's Destination is the TVS's SSO URL {expected}"),
        |_, xml| {
            let doc = parse(xml)?;
            match authn_request_root(&doc)?.attribute("Destination") {
                None => Err("the AuthnRequest has no Destination".into()),
                Some(d) if d == expected => Ok(()),
                Some(d) => Err(format!(
                    "the AuthnRequest's Destination is {d:?}, not the TVS's SSO URL {expected:?}"
                )),
            }
        },
    )
}

/// The AuthnRequest asks for the level with Comparison `minimum`, at the row's minimum or above.
pub(super) fn authn_request_loa(step: &str, ctx: &Context<'_>) -> Verdict {
    let min = ctx.saml.min_loa.as_str();
    let Some(min_rank) = rank(min) else {
        return v(
            Outcome::Error,
            format!("the row's minimum level {min:?} is not an eID level"),
            vec![],
        );
    };
    judge_each(
        posted_authn_requests(ctx.exchanges, Some(step)),
        no_authn_request(step),
        &format!(
            "the AuthnRequest asks for at least {} with Comparison=\"minimum\"",
            level_name(min)
        ),
        |_, xml| {
            let doc = parse(xml)?;
            let root = authn_request_root(&doc)?;
            // [U] eID SAML makes the element optional; without it the TVS falls back on the
            // DV's registration, which the PGO's user cannot see. koppeltest wants it explicit.
            let Some(context) = child(root, NS_SAMLP, "RequestedAuthnContext") else {
                return Err(
                    "the AuthnRequest has no RequestedAuthnContext: the level it needs is not asked for"
                        .into(),
                );
            };
            match context.attribute("Comparison") {
                Some("minimum") => {}
                // SAML core §3.3.2.2.1: no Comparison means "exact".
                None => {
                    return Err(
                        "the RequestedAuthnContext has no Comparison, which means \"exact\": a higher level could be turned away"
                            .into(),
                    );
                }
                Some(other) => {
                    return Err(format!(
                        "the RequestedAuthnContext asks with Comparison=\"{other}\", not \"minimum\""
                    ));
                }
            }
            let refs: Vec<String> = children(context, NS_SAML, "AuthnContextClassRef")
                .map(text)
                .collect();
            if refs.is_empty() {
                return Err("the RequestedAuthnContext names no AuthnContextClassRef".into());
            }
            let mut lowest: Option<(usize, &str)> = None;
            for r in &refs {
                let Some(rk) = rank(r) else {
                    return Err(format!("{r:?} is not an eID level of assurance"));
                };
                if lowest.is_none_or(|(l, _)| rk < l) {
                    lowest = Some((rk, r));
                }
            }
            match lowest {
                Some((rk, r)) if rk < min_rank => Err(format!(
                    "the AuthnRequest asks for {}, below the row's minimum {}",
                    level_name(r),
                    level_name(min)
                )),
                _ => Ok(()),
            }
        },
    )
}

/// The AuthnRequest has an ID no other login of the scenario used, and an IssueInstant of the
/// moment it was sent.
pub(super) fn authn_request_fresh(step: &str, ctx: &Context<'_>) -> Verdict {
    let all = posted_authn_requests(ctx.exchanges, None);
    // Every other AuthnRequest of the scenario, by exchange, with its ID.
    let others: Vec<(usize, String)> = all
        .iter()
        .filter(|r| r.exchange.step.as_deref() != Some(step))
        .filter_map(|r| {
            let xml = r.xml.as_ref().ok()?;
            let doc = parse(xml).ok()?;
            let id = authn_request_root(&doc).ok()?.attribute("ID")?.to_string();
            Some((r.exchange.seq, id))
        })
        .collect();
    let mine = posted_authn_requests(ctx.exchanges, Some(step));
    // With one login the ID has nothing to be compared with; the IssueInstant is still judged.
    let passed = if others.is_empty() {
        "the AuthnRequest's IssueInstant is the moment it was sent (the scenario's only login: its ID had no other to differ from)".to_string()
    } else {
        format!(
            "the AuthnRequest's ID is new (unlike the {} other login(s) of this scenario) and its IssueInstant is the moment it was sent",
            others.len()
        )
    };
    let mut verdict = judge_each(mine, no_authn_request(step), &passed, |r, xml| {
        let doc = parse(xml)?;
        let root = authn_request_root(&doc)?;
        let id = root.attribute("ID").unwrap_or("");
        if id.is_empty() {
            return Err("the AuthnRequest has no ID".into());
        }
        if let Some((seq, _)) = others.iter().find(|(_, other)| other == id) {
            return Err(format!(
                "the AuthnRequest reuses the ID {id:?} of the AuthnRequest in exchange {seq}: a replayed or cached request"
            ));
        }
        let instant = root
            .attribute("IssueInstant")
            .ok_or("the AuthnRequest has no IssueInstant")?;
        let issued = OffsetDateTime::parse(instant, &Rfc3339)
            .map_err(|_| format!("IssueInstant {instant:?} is not an xs:dateTime in UTC"))?;
        let recorded = r
            .exchange
            .recorded_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or("the exchange has no recording time to compare the IssueInstant with")?;
        let skew = (recorded - issued).whole_seconds();
        if skew.abs() > ALLOWED_SKEW_S {
            return Err(format!(
                "the AuthnRequest's IssueInstant {instant} is {} s from when it was posted ({recorded}): not a fresh request",
                skew.abs()
            ));
        }
        Ok(())
    });
    if verdict.outcome == Outcome::Pass {
        verdict.evidence.extend(others.iter().map(|(seq, _)| *seq));
    }
    verdict
}

/// The ArtifactResolve is signed, enveloped, with RSA-SHA256 or stronger.
pub(super) fn artifact_resolve_signed(step: &str, ctx: &Context<'_>) -> Verdict {
    judge_each(
        artifact_resolves(ctx.exchanges, Some(step)),
        no_artifact_resolve(step),
        "the ArtifactResolve carries an enveloped RSA-SHA256 (or stronger) signature over its own ID",
        |_, xml| {
            let doc = parse(xml)?;
            match signature_problem(artifact_resolve_element(&doc)?) {
                Some(problem) => Err(problem),
                None => Ok(()),
            }
        },
    )
}

/// The ArtifactResolve came over mutual TLS with a certificate for the DVA's back-channel host.
/// [U] The TVS binds the DV's registered certificate; koppeltest knows the DVA's certificate by
/// the host it must name, the ZAL's token endpoint host (both are its back-channel identity).
pub(super) fn artifact_resolve_mutual_tls(step: &str, ctx: &Context<'_>) -> Verdict {
    let Some(host) = ctx.saml.dva_back_host.as_deref() else {
        return v(
            Outcome::Error,
            "the row names no back-channel host to compare the client certificate with",
            vec![],
        );
    };
    let recorded = artifact_resolves(ctx.exchanges, Some(step));
    let names: Vec<String> = recorded
        .iter()
        .filter_map(|r| r.exchange.client_certificate.as_ref())
        .map(|c| {
            format!(
                "{} (SHA-256 {}…)",
                c.subject,
                c.sha256.get(..16).unwrap_or(&c.sha256)
            )
        })
        .collect();
    judge_each(
        recorded,
        no_artifact_resolve(step),
        &format!(
            "the ArtifactResolve came over mutual TLS with the DVA's certificate for {host}: {}",
            names.join("; ")
        ),
        |r, _| match &r.exchange.client_certificate {
            None => Err("the ArtifactResolve came without a client certificate".into()),
            Some(c) if c.dns_names.iter().any(|n| n.eq_ignore_ascii_case(host)) => Ok(()),
            Some(c) => Err(format!(
                "the ArtifactResolve came with a certificate for {} ({}, SHA-256 {}…), not for the DVA's back-channel host {host}",
                if c.dns_names.is_empty() {
                    "no DNS name".to_string()
                } else {
                    c.dns_names.join(", ")
                },
                c.subject,
                c.sha256.get(..16).unwrap_or(&c.sha256)
            )),
        },
    )
}

/// The `SAMLart` values (as recorded: redacted labels) the browser delivered to the DVA in
/// `step`, with the exchange that delivered each.
fn delivered_artifacts(exchanges: &[Exchange], step: &str) -> Vec<(usize, String)> {
    exchanges
        .iter()
        .filter(|x| x.step.as_deref() == Some(step))
        .filter(|x| x.from == Party::Browser && x.to == Party::Dva)
        .filter_map(|x| {
            // The label contains '#', which a URL parser would take for a fragment.
            let query = x.url.split_once('?')?.1;
            let artifact = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "SAMLart")
                .map(|(_, v)| v.into_owned())?;
            Some((x.seq, artifact))
        })
        .collect()
}

/// The artifact an ArtifactResolve asks for.
fn resolved_artifact(xml: &str) -> Option<String> {
    let doc = parse(xml).ok()?;
    let resolve = artifact_resolve_element(&doc).ok()?;
    Some(text(child(resolve, NS_SAMLP, "Artifact")?))
}

/// Each artifact the DVA received in the step was resolved once per delivery: in every step of
/// the scenario, no more ArtifactResolves for it than deliveries of it there. A second
/// resolution on one delivery, or one in a step that delivered nothing (a retry later), fails.
/// A replayed artifact, delivered again in a later step, may be resolved again there: that is
/// the DVA asking, and the TVS's business to answer it as spent. An artifact the DVA never
/// resolved leaves nothing to judge: `error`.
pub(super) fn artifact_resolved_once(step: &str, ctx: &Context<'_>) -> Verdict {
    let delivered = delivered_artifacts(ctx.exchanges, step);
    if delivered.is_empty() {
        return v(
            Outcome::Error,
            format!(
                "could not judge: no artifact reached the DVA's assertion consumer service in step {step:?}"
            ),
            vec![],
        );
    }
    // Every delivery and every resolution in the scenario, with its step.
    let deliveries: Vec<(Option<&str>, usize, String)> = ctx
        .exchanges
        .iter()
        .filter_map(|x| x.step.as_deref())
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .flat_map(|s| {
            delivered_artifacts(ctx.exchanges, s)
                .into_iter()
                .map(move |(seq, a)| (Some(s), seq, a))
        })
        .collect();
    let resolves: Vec<(Option<&str>, usize, String)> = artifact_resolves(ctx.exchanges, None)
        .iter()
        .filter_map(|r| {
            let xml = r.xml.as_ref().ok()?;
            Some((
                r.exchange.step.as_deref(),
                r.exchange.seq,
                resolved_artifact(xml)?,
            ))
        })
        .collect();
    let list = |v: &[usize]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut evidence = Vec::new();
    let mut judged: Vec<&str> = Vec::new();
    for (delivered_at, artifact) in &delivered {
        if judged.contains(&artifact.as_str()) {
            continue;
        }
        judged.push(artifact);
        let all: Vec<usize> = resolves
            .iter()
            .filter(|(_, _, a)| a == artifact)
            .map(|(_, seq, _)| *seq)
            .collect();
        if all.is_empty() {
            return v(
                Outcome::Error,
                format!(
                    "could not judge: the DVA never resolved the artifact {artifact} it received (exchange {delivered_at})"
                ),
                vec![*delivered_at],
            );
        }
        let steps: BTreeSet<Option<&str>> = resolves
            .iter()
            .filter(|(_, _, a)| a == artifact)
            .map(|(s, _, _)| *s)
            .collect();
        for t in steps {
            let here_resolved: Vec<usize> = resolves
                .iter()
                .filter(|(s, _, a)| a == artifact && *s == t)
                .map(|(_, seq, _)| *seq)
                .collect();
            let here_delivered: Vec<usize> = deliveries
                .iter()
                .filter(|(s, _, a)| a == artifact && *s == t)
                .map(|(_, seq, _)| *seq)
                .collect();
            if here_resolved.len() > here_delivered.len() {
                return v(
                    Outcome::Fail,
                    format!(
                        "the artifact {artifact} was resolved {} times (exchanges {}) in step {} for {} there: an artifact resolves once per delivery",
                        here_resolved.len(),
                        list(&here_resolved),
                        t.map_or("(none)".to_string(), |t| format!("{t:?}")),
                        match here_delivered.len() {
                            0 => "no delivery".to_string(),
                            1 => format!("one delivery (exchange {})", here_delivered[0]),
                            n => format!("{n} deliveries (exchanges {})", list(&here_delivered)),
                        },
                    ),
                    here_resolved
                        .iter()
                        .chain(&here_delivered)
                        .copied()
                        .collect(),
                );
            }
        }
        evidence.push(*delivered_at);
        evidence.extend(all);
    }
    v(
        Outcome::Pass,
        "each artifact the DVA received was resolved once per delivery",
        evidence,
    )
}

/// The level of assurance the mock TVS reported for the step's login: the AuthnContextClassRef
/// of the Assertion in the first ArtifactResponse it answered with success.
fn achieved_level(exchanges: &[Exchange], step: &str) -> Option<(usize, String)> {
    artifact_resolves(exchanges, Some(step))
        .iter()
        .filter(|r| r.exchange.status == Some(200))
        .find_map(|r| {
            let doc = parse(r.exchange.response_body.as_deref()?).ok()?;
            let assertion = doc.descendants().find(|n| is(*n, NS_SAML, "Assertion"))?;
            let class = assertion
                .descendants()
                .find(|n| is(*n, NS_SAML, "AuthnContextClassRef"))?;
            Some((r.exchange.seq, text(class)))
        })
}

/// The DVA's decision on a login follows the row's minimum level of assurance: a login at or
/// above it is accepted (a code reaches the PGO), one below it refused with access_denied,
/// after the DVA resolved the artifact either way. The level is what the mock TVS recorded
/// sending, so the same scenario is right for any row minimum.
pub(super) fn loa_respected(a: &AuthorizeResult, step: &str, ctx: &Context<'_>) -> Verdict {
    let min = ctx.saml.min_loa.as_str();
    let Some(min_rank) = rank(min) else {
        return v(
            Outcome::Error,
            format!("the row's minimum level {min:?} is not an eID level"),
            vec![],
        );
    };
    if let AuthorizeOutcome::Broken { reason, .. } = &a.outcome {
        return v(
            Outcome::Error,
            format!("the front channel broke off: {reason}"),
            a.evidence.clone(),
        );
    }
    let Some((resolved, achieved)) = achieved_level(ctx.exchanges, step) else {
        return v(
            Outcome::Error,
            "could not exercise the login: the DVA never resolved an artifact whose Assertion the mock TVS recorded",
            a.evidence.clone(),
        );
    };
    let Some(achieved_rank) = rank(&achieved) else {
        return v(
            Outcome::Error,
            format!("the mock TVS reported {achieved:?}, not an eID level"),
            vec![resolved],
        );
    };
    let requested = posted_authn_requests(ctx.exchanges, Some(step))
        .iter()
        .find_map(|r| {
            let doc = parse(r.xml.as_ref().ok()?).ok()?;
            let context = child(
                authn_request_root(&doc).ok()?,
                NS_SAMLP,
                "RequestedAuthnContext",
            )?;
            Some(text(child(context, NS_SAML, "AuthnContextClassRef")?))
        })
        .map_or_else(|| "no level".to_string(), |r| level_name(&r));
    let setting = format!(
        "a login at {} (the row's minimum is {}; the AuthnRequest asked for {requested})",
        level_name(&achieved),
        level_name(min)
    );
    if achieved_rank >= min_rank {
        // Accepted means a code reached the PGO; whether the state came with it is
        // state-echoed's rule, not this one's.
        let code = matches!(a.outcome, AuthorizeOutcome::RedirectedBack { .. })
            && a.param("code").is_some_and(|c| !c.is_empty());
        let verdict = code_issued(a);
        let mut evidence = vec![resolved];
        evidence.extend(verdict.evidence);
        if code {
            return v(Outcome::Pass, format!("{setting} was accepted"), evidence);
        }
        return v(
            verdict.outcome,
            format!("{setting} must be accepted: {}", verdict.message),
            evidence,
        );
    }
    let verdict = login_refused(a, &trace(ctx.exchanges, step), false);
    v(
        verdict.outcome,
        format!("{setting} must be refused: {}", verdict.message),
        verdict.evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::PresentedCertificate;

    const DV: &str = "urn:nl-eid-gdi:1.0:DV:00000009999999999100:entities:9100";
    const SSO: &str = "https://tvs.koppeltest.test/sso";
    const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
    const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
    const SUBSTANTIAL: &str = "http://eidas.europa.eu/LoA/substantial";
    const HIGH: &str = "http://eidas.europa.eu/LoA/high";
    const LOW: &str = "http://eidas.europa.eu/LoA/low";

    fn signature(id: &str, method: &str, digest: &str) -> String {
        format!(
            "<ds:Signature xmlns:ds=\"{NS_DS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
             <ds:SignatureMethod Algorithm=\"{method}\"/><ds:Reference URI=\"#{id}\"><ds:DigestMethod Algorithm=\"{digest}\"/>\
             <ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>QUJD</ds:SignatureValue></ds:Signature>"
        )
    }

    /// A conformant AuthnRequest's XML; `edit` changes it into a deviating one.
    fn authn_request(id: &str, instant: &str) -> String {
        format!(
            "<samlp:AuthnRequest xmlns:samlp=\"{NS_SAMLP}\" xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{instant}\" Destination=\"{SSO}\" AssertionConsumerServiceIndex=\"0\">\
             <saml:Issuer>{DV}</saml:Issuer>{sig}<samlp:RequestedAuthnContext Comparison=\"minimum\">\
             <saml:AuthnContextClassRef>{SUBSTANTIAL}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>",
            sig = signature(id, RSA_SHA256, SHA256)
        )
    }

    fn exchange(seq: usize, step: &str, from: Party, to: Party, method: &str) -> Exchange {
        Exchange {
            seq,
            step: Some(step.into()),
            from,
            to,
            method: method.into(),
            url: String::new(),
            request_headers: vec![],
            request_body: None,
            status: Some(200),
            response_headers: vec![],
            response_body: None,
            transport_error: None,
            elapsed_ms: Some(1),
            recorded_at: Some("2026-12-01T03:00:00.000Z".into()),
            client_certificate: None,
            ticks: None,
        }
    }

    /// The browser's post of `xml` to the mock TVS's SSO service.
    fn posted(seq: usize, step: &str, xml: &str) -> Exchange {
        let mut x = exchange(seq, step, Party::Browser, Party::Tvs, "POST");
        x.url = SSO.into();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("SAMLRequest", &B64.encode(xml));
        form.append_pair("RelayState", "abc");
        x.request_body = Some(form.finish());
        x
    }

    fn resolve_xml(id: &str, artifact: &str, sig: &str) -> String {
        format!(
            "<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\"><soapenv:Body><samlp:ArtifactResolve xmlns:samlp=\"{NS_SAMLP}\" \
             xmlns:saml=\"{NS_SAML}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"2026-12-01T03:00:00Z\"><saml:Issuer>{DV}</saml:Issuer>\
             {sig}<samlp:Artifact>{artifact}</samlp:Artifact></samlp:ArtifactResolve></soapenv:Body></soapenv:Envelope>"
        )
    }

    /// The mock TVS's witness record of an ArtifactResolve, answered with an Assertion at `loa`.
    fn resolved(seq: usize, step: &str, xml: &str, loa: &str, host: &str) -> Exchange {
        let mut x = exchange(seq, step, Party::Dva, Party::Tvs, "POST");
        x.url = "https://soap.tvs.koppeltest.test/ars".into();
        x.request_body = Some(xml.into());
        x.response_body = Some(format!(
            "<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP}\"><soapenv:Body><samlp:ArtifactResponse xmlns:samlp=\"{NS_SAMLP}\">\
             <samlp:Response><saml:Assertion xmlns:saml=\"{NS_SAML}\"><saml:AuthnStatement><saml:AuthnContext>\
             <saml:AuthnContextClassRef>{loa}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>\
             </saml:Assertion></samlp:Response></samlp:ArtifactResponse></soapenv:Body></soapenv:Envelope>"
        ));
        x.client_certificate = Some(PresentedCertificate {
            subject: format!("CN={host}"),
            dns_names: vec![host.into()],
            sha256: "ab".repeat(32),
        });
        x
    }

    fn acs(seq: usize, step: &str, artifact: &str) -> Exchange {
        let mut x = exchange(seq, step, Party::Browser, Party::Dva, "GET");
        x.url = format!("https://dva.test/saml/acs?SAMLart={artifact}&RelayState=abc");
        x
    }

    const BACK: &str = "medmij.conform.dva.koppeltest.test";

    fn expectations(min: &str) -> SamlExpectations {
        SamlExpectations {
            dv_entity_id: Some(DV.into()),
            tvs_sso_url: Some(SSO.into()),
            dva_back_host: Some(BACK.into()),
            min_loa: min.into(),
        }
    }

    /// Judges `exchanges` with `judge`, in a context with the row minimum `min`.
    fn with<T>(exchanges: &[Exchange], min: &str, judge: impl Fn(&Context<'_>) -> T) -> T {
        let budgets = Budgets::default();
        let manifest = crate::fixtures::Manifest::default();
        let tls = TlsPolicy {
            edition: Edition::default(),
            expiry_warning_days: 60,
            front_roots: vec![],
            back_roots: vec![],
        };
        let saml = expectations(min);
        let ctx = Context {
            budgets: &budgets,
            manifest: &manifest,
            bsn: "999911533",
            lab_window: LabWindowPolicy::default(),
            lab_date_filter: false,
            exchanges,
            gegevensdiensten: &[],
            tls: &tls,
            saml: &saml,
        };
        judge(&ctx)
    }

    fn judge_request(xml: &str, judge: fn(&str, &Context<'_>) -> Verdict) -> Verdict {
        with(&[posted(1, "login", xml)], SUBSTANTIAL, |ctx| {
            judge("login", ctx)
        })
    }

    const ID: &str = "_0123456789abcdef0123456789abcdef";
    const NOW: &str = "2026-12-01T03:00:00Z";

    #[test]
    fn a_conformant_authn_request_passes_every_rule() {
        let xml = authn_request(ID, NOW);
        for judge in [
            authn_request_signed,
            authn_request_acs_index,
            authn_request_issuer,
            authn_request_destination,
            authn_request_loa,
        ] {
            let verdict = judge_request(&xml, judge);
            assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
            assert_eq!(verdict.evidence, vec![1]);
        }
    }

    #[test]
    fn no_authn_request_is_an_error_never_a_pass() {
        let verdict = with(&[], SUBSTANTIAL, |ctx| authn_request_signed("login", ctx));
        assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
        let unreadable = judge_request("<!DOCTYPE x []><x/>", authn_request_signed);
        assert_eq!(unreadable.outcome, Outcome::Fail, "{}", unreadable.message);
        let mut bad = posted(1, "login", "");
        bad.request_body = Some("SAMLRequest=%%%not-base64".into());
        let verdict = with(&[bad], SUBSTANTIAL, |ctx| {
            authn_request_issuer("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.message);
        assert!(verdict.message.contains("base64"), "{}", verdict.message);
    }

    #[test]
    fn sha1_unsigned_detached_and_misdirected_signatures_fail() {
        let good = authn_request(ID, NOW);
        let cases = [
            (
                good.replace(RSA_SHA256, RSA_SHA1).replace(SHA256, SHA1),
                "SHA-1",
            ),
            (good.replace(SHA256, SHA1), "digests"),
            (
                good.replace(&signature(ID, RSA_SHA256, SHA256), ""),
                "unsigned",
            ),
            (
                good.replace(&format!("URI=\"#{ID}\""), "URI=\"#_other\""),
                "refers to",
            ),
            (
                good.replace(
                    &signature(ID, RSA_SHA256, SHA256),
                    &format!(
                        "<samlp:Extensions>{}</samlp:Extensions>",
                        signature(ID, RSA_SHA256, SHA256)
                    ),
                ),
                "direct child",
            ),
            (
                good.replace(
                    "</samlp:AuthnRequest>",
                    &format!("{}</samlp:AuthnRequest>", signature(ID, RSA_SHA256, SHA256)),
                ),
                "2 ds:Signature",
            ),
        ];
        for (xml, why) in cases {
            let verdict = judge_request(&xml, authn_request_signed);
            assert_eq!(verdict.outcome, Outcome::Fail, "{why}: {}", verdict.message);
            assert!(verdict.message.contains(why), "{why}: {}", verdict.message);
        }
        // Stronger than RSA-SHA256 passes.
        let sha512 = good
            .replace(
                RSA_SHA256,
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            )
            .replace(SHA256, "http://www.w3.org/2001/04/xmlenc#sha512");
        assert_eq!(
            judge_request(&sha512, authn_request_signed).outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn an_acs_url_or_a_missing_index_fails() {
        let good = authn_request(ID, NOW);
        let url = good.replace(
            "AssertionConsumerServiceIndex=\"0\"",
            "AssertionConsumerServiceURL=\"https://dva.test/saml/acs\"",
        );
        let verdict = judge_request(&url, authn_request_acs_index);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("AssertionConsumerServiceURL"));
        let both = good.replace(
            "AssertionConsumerServiceIndex=\"0\"",
            "AssertionConsumerServiceIndex=\"0\" AssertionConsumerServiceURL=\"https://dva.test/saml/acs\"",
        );
        assert_eq!(
            judge_request(&both, authn_request_acs_index).outcome,
            Outcome::Fail
        );
        let none = good.replace("AssertionConsumerServiceIndex=\"0\"", "");
        assert_eq!(
            judge_request(&none, authn_request_acs_index).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn a_foreign_issuer_or_destination_fails() {
        let good = authn_request(ID, NOW);
        let lc = good.replace(":DV:", ":LC:");
        let verdict = judge_request(&lc, authn_request_issuer);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains(":LC:"), "{}", verdict.message);
        let none = good.replace(&format!(" Destination=\"{SSO}\""), "");
        let verdict = judge_request(&none, authn_request_destination);
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("no Destination"));
        let other = good.replace(SSO, "https://tvs.koppeltest.test/metadata");
        assert_eq!(
            judge_request(&other, authn_request_destination).outcome,
            Outcome::Fail
        );
    }

    #[test]
    fn the_requested_level_is_judged_against_the_row_minimum() {
        let good = authn_request(ID, NOW);
        for (xml, why) in [
            (good.replace("\"minimum\"", "\"exact\""), "exact"),
            (good.replace(" Comparison=\"minimum\"", ""), "no Comparison"),
            (good.replace(SUBSTANTIAL, LOW), "midden"),
            (
                good.replace(
                    &good[good.find("<samlp:RequestedAuthnContext").unwrap()
                        ..good.find("</samlp:AuthnRequest>").unwrap()],
                    "",
                ),
                "no RequestedAuthnContext",
            ),
            (
                good.replace(
                    SUBSTANTIAL,
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
                ),
                "not an eID level",
            ),
        ] {
            let verdict = judge_request(&xml, authn_request_loa);
            assert_eq!(verdict.outcome, Outcome::Fail, "{why}: {}", verdict.message);
            assert!(verdict.message.contains(why), "{why}: {}", verdict.message);
        }
        // Substantieel asked for on a hoog row is too low; hoog asked for passes on either.
        let exchanges = [posted(1, "login", &good)];
        let on_high = with(&exchanges, HIGH, |ctx| authn_request_loa("login", ctx));
        assert_eq!(on_high.outcome, Outcome::Fail, "{}", on_high.message);
        let high = [posted(1, "login", &good.replace(SUBSTANTIAL, HIGH))];
        for min in [SUBSTANTIAL, HIGH] {
            let verdict = with(&high, min, |ctx| authn_request_loa("login", ctx));
            assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
        }
    }

    #[test]
    fn a_reused_id_or_a_stale_instant_is_not_fresh() {
        let first = posted(1, "first", &authn_request(ID, NOW));
        let second = posted(5, "second", &authn_request("_fedcba9876543210", NOW));
        let fresh = with(&[first.clone(), second.clone()], SUBSTANTIAL, |ctx| {
            authn_request_fresh("second", ctx)
        });
        assert_eq!(fresh.outcome, Outcome::Pass, "{}", fresh.message);
        assert_eq!(fresh.evidence, vec![5, 1]);
        // The cached request: the same XML, ID and IssueInstant, posted again.
        let replayed = posted(5, "second", &authn_request(ID, NOW));
        let verdict = with(&[first.clone(), replayed], SUBSTANTIAL, |ctx| {
            authn_request_fresh("second", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(
            verdict.message.contains("reuses the ID"),
            "{}",
            verdict.message
        );
        // A new ID with an IssueInstant of an hour ago.
        let stale = posted(
            5,
            "second",
            &authn_request("_fedcba9876543210", "2026-12-01T02:00:00Z"),
        );
        let verdict = with(&[first.clone(), stale], SUBSTANTIAL, |ctx| {
            authn_request_fresh("second", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("3600 s"), "{}", verdict.message);
        // One login alone: its ID has nothing to differ from, its IssueInstant is judged.
        let alone = with(&[second], SUBSTANTIAL, |ctx| {
            authn_request_fresh("second", ctx)
        });
        assert_eq!(alone.outcome, Outcome::Pass, "{}", alone.message);
        assert!(alone.message.contains("only login"), "{}", alone.message);
        let stale_alone = posted(
            5,
            "second",
            &authn_request("_fedcba9876543210", "2026-12-01T02:00:00Z"),
        );
        let verdict = with(&[stale_alone], SUBSTANTIAL, |ctx| {
            authn_request_fresh("second", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.message);
    }

    #[test]
    fn the_artifact_resolve_is_judged_signed_and_by_its_certificate() {
        let signed = resolve_xml(
            "_ar1",
            "[artifact#1]",
            &signature("_ar1", RSA_SHA256, SHA256),
        );
        let good = [resolved(3, "login", &signed, SUBSTANTIAL, BACK)];
        for judge in [artifact_resolve_signed, artifact_resolve_mutual_tls] {
            let verdict = with(&good, SUBSTANTIAL, |ctx| judge("login", ctx));
            assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
            assert_eq!(verdict.evidence, vec![3]);
        }
        let unsigned = [resolved(
            3,
            "login",
            &resolve_xml("_ar1", "[artifact#1]", ""),
            SUBSTANTIAL,
            BACK,
        )];
        let verdict = with(&unsigned, SUBSTANTIAL, |ctx| {
            artifact_resolve_signed("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("unsigned"), "{}", verdict.message);
        let other_host = format!("other.{BACK}");
        let other = [resolved(3, "login", &signed, SUBSTANTIAL, &other_host)];
        let verdict = with(&other, SUBSTANTIAL, |ctx| {
            artifact_resolve_mutual_tls("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains(&other_host), "{}", verdict.message);
        let mut anonymous = good[0].clone();
        anonymous.client_certificate = None;
        let verdict = with(&[anonymous], SUBSTANTIAL, |ctx| {
            artifact_resolve_mutual_tls("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        let none = with(&[], SUBSTANTIAL, |ctx| {
            artifact_resolve_mutual_tls("login", ctx)
        });
        assert_eq!(none.outcome, Outcome::Error);
    }

    #[test]
    fn an_artifact_resolved_twice_fails_and_an_unresolved_one_errs() {
        let signed = resolve_xml(
            "_ar1",
            "[artifact#1]",
            &signature("_ar1", RSA_SHA256, SHA256),
        );
        let delivered = acs(2, "login", "[artifact#1]");
        let once = [
            delivered.clone(),
            resolved(3, "login", &signed, SUBSTANTIAL, BACK),
        ];
        let verdict = with(&once, SUBSTANTIAL, |ctx| {
            artifact_resolved_once("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
        assert_eq!(verdict.evidence, vec![2, 3]);
        let mut again = resolved(4, "login", &signed, SUBSTANTIAL, BACK);
        again.status = Some(500);
        let twice = [once[0].clone(), once[1].clone(), again];
        let verdict = with(&twice, SUBSTANTIAL, |ctx| {
            artifact_resolved_once("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert!(verdict.message.contains("2 times"), "{}", verdict.message);
        // A replay delivered in a later step may be resolved again there…
        let replay = [
            once[0].clone(),
            once[1].clone(),
            acs(6, "replay", "[artifact#1]"),
            resolved(5, "replay", &signed, SUBSTANTIAL, BACK),
        ];
        for step in ["login", "replay"] {
            let verdict = with(&replay, SUBSTANTIAL, |ctx| {
                artifact_resolved_once(step, ctx)
            });
            assert_eq!(
                verdict.outcome,
                Outcome::Pass,
                "{step}: {}",
                verdict.message
            );
        }
        // … but a resolution in a step that delivered nothing (a retry later) fails, and so
        // do two on the first delivery with none on the replay.
        let retry = [
            once[0].clone(),
            once[1].clone(),
            resolved(5, "token", &signed, SUBSTANTIAL, BACK),
        ];
        let verdict = with(&retry, SUBSTANTIAL, |ctx| {
            artifact_resolved_once("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.message);
        assert!(
            verdict.message.contains("no delivery"),
            "{}",
            verdict.message
        );
        let lopsided = [
            once[0].clone(),
            once[1].clone(),
            resolved(4, "login", &signed, SUBSTANTIAL, BACK),
            acs(6, "replay", "[artifact#1]"),
        ];
        let verdict = with(&lopsided, SUBSTANTIAL, |ctx| {
            artifact_resolved_once("replay", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.message);
        // Another login's artifact does not count for this one.
        let other = resolve_xml(
            "_ar2",
            "[artifact#2]",
            &signature("_ar2", RSA_SHA256, SHA256),
        );
        let unresolved = [delivered, resolved(3, "login", &other, SUBSTANTIAL, BACK)];
        let verdict = with(&unresolved, SUBSTANTIAL, |ctx| {
            artifact_resolved_once("login", ctx)
        });
        assert_eq!(verdict.outcome, Outcome::Error, "{}", verdict.message);
        let nothing = with(&[], SUBSTANTIAL, |ctx| artifact_resolved_once("login", ctx));
        assert_eq!(nothing.outcome, Outcome::Error);
    }

    fn back_with(params: &[(&str, &str)]) -> AuthorizeResult {
        AuthorizeResult {
            sent_state: Some("s".into()),
            outcome: AuthorizeOutcome::RedirectedBack {
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                seq: 9,
            },
            evidence: vec![1, 3, 9],
        }
    }

    #[test]
    fn the_level_decision_follows_the_row_minimum() {
        let code = back_with(&[("code", "[code#1]"), ("state", "s")]);
        let denied = back_with(&[
            ("error", "access_denied"),
            ("error_description", "inloggen mislukt"),
            ("state", "s"),
        ]);
        let signed = resolve_xml(
            "_ar1",
            "[artifact#1]",
            &signature("_ar1", RSA_SHA256, SHA256),
        );
        let at = |loa: &str| {
            vec![
                posted(1, "login", &authn_request(ID, NOW)),
                resolved(3, "login", &signed, loa, BACK),
            ]
        };
        let judge = |loa: &str, min: &str, a: &AuthorizeResult| {
            with(&at(loa), min, |ctx| loa_respected(a, "login", ctx))
        };
        // Substantieel on a substantieel row: accepted is right, refused wrong. A code without
        // the state is still an accepted login (the state is another check's rule).
        assert_eq!(
            judge(SUBSTANTIAL, SUBSTANTIAL, &code).outcome,
            Outcome::Pass
        );
        let stateless = back_with(&[("code", "[code#1]")]);
        assert_eq!(
            judge(SUBSTANTIAL, SUBSTANTIAL, &stateless).outcome,
            Outcome::Pass
        );
        let refused = judge(SUBSTANTIAL, SUBSTANTIAL, &denied);
        assert_eq!(refused.outcome, Outcome::Fail, "{}", refused.message);
        assert!(
            refused.message.contains("must be accepted"),
            "{}",
            refused.message
        );
        // The same login on a hoog row: refused is right, accepted wrong.
        assert_eq!(judge(SUBSTANTIAL, HIGH, &denied).outcome, Outcome::Pass);
        assert_eq!(judge(SUBSTANTIAL, HIGH, &code).outcome, Outcome::Fail);
        // Hoog, above what was asked for, must be accepted.
        let verdict = judge(HIGH, SUBSTANTIAL, &code);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.message);
        assert!(
            verdict.message.contains("asked for substantieel"),
            "{}",
            verdict.message
        );
        assert_eq!(judge(HIGH, SUBSTANTIAL, &denied).outcome, Outcome::Fail);
        // Midden is refused on any row.
        assert_eq!(judge(LOW, SUBSTANTIAL, &denied).outcome, Outcome::Pass);
        assert_eq!(judge(LOW, SUBSTANTIAL, &code).outcome, Outcome::Fail);
        // Without a resolved artifact, no decision was exercised.
        let unresolved = with(
            &[posted(1, "login", &authn_request(ID, NOW))],
            SUBSTANTIAL,
            |ctx| loa_respected(&code, "login", ctx),
        );
        assert_eq!(unresolved.outcome, Outcome::Error);
    }
}
