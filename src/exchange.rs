//! The exchange log: every request and response of every party in one scenario, redacted as it
//! is recorded.
//!
//! Mocks record, checks judge: the mock PGO (its browser and its back channel), the simulated
//! DVA (its SOAP calls to the TVS, its own refusals as notes) and the mock TVS all append here.
//! Checks read step results and point at exchanges as evidence; they never perform I/O.
//!
//! **Invariant:** nothing enters the log unredacted. Secrets (codes, tokens, refresh tokens,
//! SAML artifacts, BSNs, private keys, cookies) are replaced by stable labels such as
//! `[code#1]`, so a replayed code still shows as the *same* `[code#1]` in the evidence without the
//! value ever being written down.
//!
//! This module does not decide outcomes and does not format reports.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

/// Bodies longer than this are cut in the log (the checks see the full body through step results).
pub const MAX_LOGGED_BODY: usize = crate::limits::MAX_LOGGED_BODY;

/// Who sent or received a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// The user agent the mock PGO drives through the front channel.
    Browser,
    /// The mock PGO's server (back channel: token and resource requests).
    Pgo,
    /// The DVA under test (simulated or real).
    Dva,
    /// The mock TVS.
    Tvs,
}

/// One recorded HTTP exchange, or a note a party made about something it refused.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Exchange {
    /// Position in the scenario's log, from 0.
    pub seq: usize,
    /// The scenario step during which this happened, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub from: Party,
    pub to: Party,
    /// `GET`, `POST`, or `NOTE` for a party's own remark.
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Transport failure (connection refused, TLS alert, time-out) instead of a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// When it was recorded (RFC 3339, UTC, milliseconds): what a message's own timestamps,
    /// such as a SAML IssueInstant, are judged against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// The client certificate the TLS layer verified for this request, where the receiving
    /// party records it (the mock TVS's artifact resolution service). Names and fingerprint
    /// only; never a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PresentedCertificate>,
    /// Where the receiving party counts its events (the PGO suite's DVA): when the request
    /// arrived and when it was answered. The log's order is the order answers were recorded;
    /// these tell what a concurrent client sent before what.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticks: Option<Ticks>,
}

/// The receiving party's event counter at a request's arrival and at its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Ticks {
    pub received: u64,
    pub answered: u64,
}

/// What identifies a client certificate presented in a TLS handshake, as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct PresentedCertificate {
    /// The leaf's subject distinguished name.
    pub subject: String,
    /// The DNS names in the leaf's subjectAltName.
    pub dns_names: Vec<String>,
    /// SHA-256 of the leaf's DER encoding, lowercase hex.
    pub sha256: String,
}

/// An exchange before redaction: built by a recorder, consumed by [`ExchangeLog::record`].
#[derive(Debug, Clone)]
pub struct RawExchange {
    pub from: Party,
    pub to: Party,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<String>,
    pub transport_error: Option<String>,
    pub started: Option<Instant>,
    /// Bodies are logged up to this many bytes (the checks always see all of it).
    pub logged_body_limit: usize,
    pub client_certificate: Option<PresentedCertificate>,
    pub ticks: Option<Ticks>,
}

impl RawExchange {
    pub fn request(from: Party, to: Party, method: &str, url: &str) -> Self {
        RawExchange {
            from,
            to,
            method: method.to_string(),
            url: url.to_string(),
            request_headers: Vec::new(),
            request_body: None,
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            transport_error: None,
            started: Some(Instant::now()),
            logged_body_limit: MAX_LOGGED_BODY,
            client_certificate: None,
            ticks: None,
        }
    }

    /// A party's remark about something it refused or noticed (no HTTP message of its own).
    pub fn note(by: Party, about: Party, text: impl Into<String>) -> Self {
        let mut x = RawExchange::request(by, about, "NOTE", "");
        x.started = None;
        x.response_body = Some(text.into());
        x
    }
}

/// The log of one scenario run. Cheap to clone; all clones append to the same log.
#[derive(Debug, Clone, Default)]
pub struct ExchangeLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    entries: Vec<Exchange>,
    step: Option<String>,
    secrets: Secrets,
    /// A long-running server (`koppeltest serve …`) keeps nothing: no report will read it, and
    /// it must not grow without bound.
    discard: bool,
}

impl ExchangeLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the step that subsequent records belong to.
    pub fn set_step(&self, step: Option<&str>) {
        self.lock().step = step.map(str::to_string);
    }

    /// Redacts `text` with everything known so far (for messages written outside the log).
    /// A log for a long-running party that no report reads: it still redacts what is passed
    /// through it (for the process log), but stores no exchange and remembers no secret.
    pub fn discarding() -> Self {
        let log = Self::default();
        log.lock().discard = true;
        log
    }

    pub fn redact(&self, text: &str) -> String {
        let mut inner = self.lock();
        if inner.discard {
            // Position-based redaction still applies; learned values are not kept.
            return Secrets::default().redact(text);
        }
        inner.secrets.redact(text)
    }

    /// Redacts and appends; returns the sequence number as evidence for checks.
    pub fn record(&self, raw: RawExchange) -> usize {
        let mut inner = self.lock();
        if inner.discard {
            return 0;
        }
        let inner = &mut *inner;
        let s = &mut inner.secrets;
        let elapsed_ms = raw.started.map(|t| t.elapsed().as_millis() as u64);
        let headers = |h: Vec<(String, String)>, s: &mut Secrets| -> Vec<(String, String)> {
            h.into_iter()
                .map(|(k, v)| {
                    let v = s.redact_header(&k, &v);
                    (k, v)
                })
                .collect()
        };
        let seq = inner.entries.len();
        let entry = Exchange {
            seq,
            step: inner.step.clone(),
            from: raw.from,
            to: raw.to,
            method: raw.method,
            url: s.redact(&raw.url),
            request_headers: headers(raw.request_headers, s),
            request_body: raw
                .request_body
                .map(|b| redact_and_cut(s, b, raw.logged_body_limit)),
            status: raw.status,
            response_headers: headers(raw.response_headers, s),
            response_body: raw
                .response_body
                .map(|b| redact_and_cut(s, b, raw.logged_body_limit)),
            transport_error: raw.transport_error.map(|e| s.redact(&e)),
            elapsed_ms,
            recorded_at: Some(now_rfc3339()),
            client_certificate: raw.client_certificate,
            ticks: raw.ticks,
        };
        inner.entries.push(entry);
        seq
    }

    /// A copy of everything recorded so far.
    pub fn entries(&self) -> Vec<Exchange> {
        self.lock().entries.clone()
    }

    /// Every secret value seen, for tests proving that none reaches a report.
    pub fn secret_values(&self) -> Vec<String> {
        self.lock()
            .secrets
            .values
            .iter()
            .map(|(v, _)| v.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        // A poisoned lock means a recorder panicked mid-append; the entries are still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The current time as RFC 3339 in UTC, to the millisecond.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Redacts `body` and cuts it to `limit` bytes. Redaction runs on a margin beyond the cut, so
/// a secret that straddles the cut is replaced whole, never left half; the rest of a large body
/// is not scanned at all.
///
/// Secrets are learnt from the whole body first (a linear scan of their positions), so one
/// longer than the margin (a hostile DVA's megabyte access token) is known; the prefix of it
/// that the cut leaves is then cut off too, behind its label.
fn redact_and_cut(s: &mut Secrets, mut body: String, limit: usize) -> String {
    const MARGIN: usize = 8 * 1024;
    let total = body.len();
    if total > limit.saturating_add(MARGIN) {
        s.learn(&body);
        body.truncate(char_boundary(&body, limit + MARGIN));
    }
    let mut redacted = s.redact(&body);
    if total > limit.saturating_add(MARGIN) {
        s.cut_secret_remnant(&mut redacted);
    }
    if total > limit {
        cut_with_note(redacted, limit, total)
    } else {
        redacted
    }
}

fn char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn cut_with_note(mut body: String, limit: usize, total: usize) -> String {
    if body.len() > limit {
        body.truncate(char_boundary(&body, limit));
    }
    body.push_str(&format!("\n[… truncated: {total} bytes in all]"));
    body
}

/// Secret values seen in one scenario, each with its stable label.
#[derive(Debug, Default)]
struct Secrets {
    values: Vec<(String, String)>,
    counters: std::collections::BTreeMap<String, usize>,
}

/// Query or form parameters whose values are always secret.
const SECRET_PARAMS: &[(&str, &str)] = &[
    ("code", "code"),
    ("client_secret", "client-secret"),
    ("client_assertion", "client-assertion"),
    ("code_verifier", "code-verifier"),
    ("access_token", "access-token"),
    ("refresh_token", "refresh-token"),
    ("SAMLart", "artifact"),
];

/// JSON members whose string values are always secret. (`code` is not one: in JSON it is a
/// FHIR coding's code, which is evidence, not a secret.)
const SECRET_JSON: &[(&str, &str)] = &[
    ("access_token", "access-token"),
    ("refresh_token", "refresh-token"),
];

impl Secrets {
    fn register(&mut self, kind: &str, value: &str) -> String {
        if value.is_empty() || value.starts_with('[') {
            return value.to_string();
        }
        if let Some((_, label)) = self.values.iter().find(|(v, _)| v == value) {
            return label.clone();
        }
        let n = self.counters.entry(kind.to_string()).or_default();
        *n += 1;
        let label = format!("[{kind}#{n}]");
        self.values.push((value.to_string(), label.clone()));
        // Longest first, so a value that contains another is replaced whole.
        self.values.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        label
    }

    fn redact_header(&mut self, name: &str, value: &str) -> String {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" || lower == "proxy-authorization" {
            // The scheme is case-insensitive (RFC 7235 §2.1); it is kept as sent.
            if let Some((scheme, token)) = value
                .split_at_checked(7)
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer "))
            {
                let label = self.register("access-token", token.trim());
                return format!("{scheme}{label}");
            }
            return "[redacted]".to_string();
        }
        if lower == "cookie" || lower == "set-cookie" {
            return self.redact_cookie(value, lower == "cookie");
        }
        self.redact(value)
    }

    /// A `Cookie` header is all `name=value` pairs, every value a possible session; a
    /// `Set-Cookie` header is one pair, then attributes (`Path`, `Expires`, …), which stay
    /// readable but get the redactions every text gets (learned secrets, BSNs, keys).
    fn redact_cookie(&mut self, value: &str, request: bool) -> String {
        value
            .split(';')
            .enumerate()
            .map(
                |(i, part)| match (i == 0 || request, part.split_once('=')) {
                    // The name stays readable, with the redactions every text gets.
                    (true, Some((name, _))) => format!("{}=[redacted]", self.redact(name.trim())),
                    // A cookie without a name is all value.
                    (true, None) if !part.trim().is_empty() => "[redacted]".to_string(),
                    _ => self.redact(part.trim()),
                },
            )
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Where `text` ends in the first part of a known secret (what a cut leaves of a secret
    /// longer than the margin: every whole occurrence was replaced already), cuts it there and
    /// puts the secret's label in its place.
    fn cut_secret_remnant(&self, text: &mut String) {
        const PREFIX: usize = 16;
        for (value, label) in &self.values {
            if value.len() <= PREFIX {
                continue;
            }
            let prefix = &value[..char_boundary(value, PREFIX)];
            if let Some(at) = text.find(prefix) {
                text.truncate(at);
                text.push_str(label);
                return;
            }
        }
    }

    fn redact(&mut self, text: &str) -> String {
        // Private keys go first: a learned value may be part of a key's BEGIN line
        // (`code=-----BEGIN` registers `-----BEGIN`), and replacing it would hide the key from
        // its redaction.
        let text = &redact_private_keys(text);
        self.learn(text);
        self.replace_known(text)
    }

    /// Learns secrets from their well-known positions (query and form parameters, JSON members,
    /// SAML artifacts).
    fn learn(&mut self, text: &str) {
        for (param, kind) in SECRET_PARAMS {
            for v in param_values(text, param) {
                // A FHIR token search (`code=system|value`) is a query, not an OAuth code.
                if *param == "code" && v.contains('|') {
                    continue;
                }
                self.register(kind, &v);
            }
        }
        for (member, kind) in SECRET_JSON {
            for v in json_string_values(text, member) {
                self.register(kind, &v);
            }
        }
        for v in xml_texts(text, "Artifact") {
            self.register("artifact", &v);
        }
    }

    /// Replaces every occurrence of every known secret, and private keys and BSNs by shape.
    fn replace_known(&self, text: &str) -> String {
        // Keys first here too: a value learned from a key's BEGIN line must not hide the key.
        let mut out = redact_private_keys(text);
        for (value, label) in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), label);
            }
            // Secrets also travel url-encoded in query strings and form bodies.
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            if encoded != *value && out.contains(encoded.as_str()) {
                out = out.replace(encoded.as_str(), label);
            }
        }
        redact_bsns(&out)
    }
}

/// Values of `name=` in query strings and form bodies.
fn param_values(text: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let pat = format!("{name}=");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&pat) {
        let start = from + pos;
        let before_ok = start == 0
            || matches!(
                text.as_bytes()[start - 1],
                b'?' | b'&' | b' ' | b'\n' | b'"'
            );
        let vstart = start + pat.len();
        let vend = text[vstart..]
            .find(['&', ' ', '\n', '"', '#', '<', '\''])
            .map_or(text.len(), |e| vstart + e);
        if before_ok && vend > vstart {
            let raw = &text[vstart..vend];
            let decoded: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| raw.to_string());
            found.push(decoded);
        }
        from = vend.max(start + 1);
    }
    found
}

/// String values of JSON members called `name` (a textual scan: bodies may be cut or broken).
fn json_string_values(text: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let pat = format!("\"{name}\"");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&pat) {
        let mut i = from + pos + pat.len();
        let rest = &text[i..];
        let trimmed = rest.trim_start();
        i += rest.len() - trimmed.len();
        if let Some(after_colon) = trimmed.strip_prefix(':') {
            let value = after_colon.trim_start();
            if let Some(v) = value.strip_prefix('"') {
                if let Some(end) = v.find('"') {
                    found.push(v[..end].to_string());
                }
            }
        }
        from = i.max(from + pos + 1);
    }
    found
}

/// Texts of XML elements with local name `local` (any prefix).
fn xml_texts(text: &str, local: &str) -> Vec<String> {
    let mut found = Vec::new();
    let close = format!("{local}>");
    for (i, _) in text.match_indices(&close) {
        // Only opening tags: `<Artifact>` or `<p:Artifact>`; the closing tag has `</`.
        // The tag's `<` is within a short look-back: an unbounded one would make a body of
        // many `Artifact>` and no `<` quadratic.
        let lo = i.saturating_sub(64);
        let Some(lt) = text.as_bytes()[lo..i]
            .iter()
            .rposition(|b| *b == b'<')
            .map(|p| lo + p)
        else {
            continue;
        };
        let tag = &text[lt + 1..i];
        if tag.starts_with('/') || tag.contains(' ') || !(tag.is_empty() || tag.ends_with(':')) {
            continue;
        }
        let start = i + close.len();
        if let Some(end) = text[start..].find('<') {
            let v = text[start..start + end].trim();
            if !v.is_empty() {
                found.push(v.to_string());
            }
        }
    }
    found
}

/// Replaces every private-key PEM block (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`,
/// `ENCRYPTED PRIVATE KEY`, any label with `PRIVATE KEY` in it) with `[private-key]`, wherever it
/// stands: after a certificate, after another key, inside a JSON string with `\n` escapes.
/// Other blocks (certificates, parameters) are evidence and stay. A key whose END line is
/// missing (a cut body, a broken header) is redacted to the end of the text: nothing after its
/// BEGIN line can be told apart from key material.
fn redact_private_keys(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let after = &rest[at + BEGIN.len()..];
        // The label ends at its closing dashes, or (in a broken header) at the end of the line,
        // raw or JSON-escaped.
        let line_end = ["\n", "\r", "\\n", "\\r"]
            .iter()
            .filter_map(|eol| after.find(eol))
            .min()
            .unwrap_or(after.len());
        let label = &after[..after[..line_end].find("-----").unwrap_or(line_end)];
        if !label.contains("PRIVATE KEY") {
            out.push_str(&rest[..at + BEGIN.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        out.push_str("[private-key]");
        let end_marker = format!("-----END{label}-----");
        rest = after
            .find(&end_marker)
            .map_or("", |e| &after[e + end_marker.len()..]);
    }
    out.push_str(rest);
    out
}

/// What the recorder redacts by its shape (BSNs, PEM private keys), for text a reader decodes
/// from what was recorded (a base64 SAML message): the recorder never saw inside it.
pub fn redact_decoded(text: &str) -> String {
    redact_bsns(&redact_private_keys(text))
}

/// Replaces every standalone 9-digit run that passes the BSN 11-check.
fn redact_bsns(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 9 && crate::ids::is_valid_bsn(&text[start..i]) {
                out.push_str(&text[last..start]);
                out.push_str("[bsn]");
                last = i;
            }
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_url(log: &ExchangeLog, url: &str) -> Exchange {
        let seq = log.record(RawExchange::request(Party::Browser, Party::Dva, "GET", url));
        log.entries()[seq].clone()
    }

    #[test]
    fn codes_get_stable_labels_so_replays_stay_visible() {
        let log = ExchangeLog::new();
        let a = record_url(&log, "https://pgo.test/cb?code=abc123secret&state=s1");
        assert_eq!(a.url, "https://pgo.test/cb?code=[code#1]&state=s1");
        let mut token = RawExchange::request(Party::Pgo, Party::Dva, "POST", "https://dva/token");
        token.request_body = Some("grant_type=authorization_code&code=abc123secret".into());
        let seq = log.record(token);
        assert_eq!(
            log.entries()[seq].request_body.as_deref(),
            Some("grant_type=authorization_code&code=[code#1]")
        );
    }

    #[test]
    fn tokens_bsns_artifacts_and_keys_never_survive() {
        let log = ExchangeLog::new();
        let mut x = RawExchange::request(Party::Pgo, Party::Dva, "GET", "https://dva/fhir/Patient");
        x.request_headers
            .push(("Authorization".into(), "Bearer tok-XYZ".into()));
        x.response_body = Some(
            r#"{"access_token": "tok-XYZ", "identifier":[{"value":"999911533"}], "k":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}"#
                .into(),
        );
        x.response_headers
            .push(("set-cookie".into(), "sid=s3cr3t; HttpOnly".into()));
        let seq = log.record(x);
        let e = &log.entries()[seq];
        let all = serde_json::to_string(e).unwrap();
        for secret in ["tok-XYZ", "999911533", "MIIE", "s3cr3t"] {
            assert!(!all.contains(secret), "{secret} leaked: {all}");
        }
        assert!(all.contains("[access-token#1]"));
        assert!(all.contains("[bsn]"));
        let soap = "<samlp:Artifact>AAQAAbase64==</samlp:Artifact>";
        assert_eq!(
            log.redact(soap),
            "<samlp:Artifact>[artifact#1]</samlp:Artifact>"
        );
    }

    #[test]
    fn fhir_codes_and_code_searches_stay_readable() {
        let log = ExchangeLog::new();
        let url = "https://dva/fhir/Observation?code=https://referentiemodel.nhg.org/tabellen/nhg-tabel-45|";
        assert_eq!(record_url(&log, url).url, url);
        let body = r#"{"coding":[{"system":"http://snomed.info/sct","code":"16076005"}]}"#;
        assert_eq!(log.redact(body), body);
    }

    #[test]
    fn a_discarding_log_keeps_nothing_but_still_redacts() {
        let log = ExchangeLog::discarding();
        for i in 0..100 {
            log.record(RawExchange::request(
                Party::Dva,
                Party::Tvs,
                "POST",
                &format!("https://tvs/ars?code=c{i}"),
            ));
        }
        assert!(log.entries().is_empty() && log.secret_values().is_empty());
        assert_eq!(
            log.redact("https://pgo/cb?code=geheim&state=s"),
            "https://pgo/cb?code=[code#1]&state=s"
        );
        assert_eq!(log.redact("bsn 999911533"), "bsn [bsn]");
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary_and_no_half_secret_survives() {
        let body = "é".repeat(MAX_LOGGED_BODY);
        let total = body.len();
        let cut = redact_and_cut(&mut Secrets::default(), body, MAX_LOGGED_BODY);
        assert!(cut.ends_with(&format!("[… truncated: {total} bytes in all]")));
        // A token straddling the cut: learned from its position, replaced whole.
        let token = "a".repeat(40);
        let body = format!(
            "{}\"access_token\": \"{token}\"{}",
            " ".repeat(90),
            " ".repeat(200)
        );
        let cut = redact_and_cut(&mut Secrets::default(), body, 120);
        assert!(!cut.contains("aaaa"), "{cut}");
        assert!(cut.contains("truncated"), "{cut}");
    }

    #[test]
    fn a_secret_longer_than_the_margin_leaves_nothing_of_itself_before_the_cut() {
        // A hostile DVA's access token of a mebibyte: the cut falls inside it, far from its end.
        let token = "t".repeat(1 << 20);
        let body = format!("{{\"access_token\":\"{token}\",\"token_type\":\"Bearer\"}}");
        let mut secrets = Secrets::default();
        let cut = redact_and_cut(&mut secrets, body, MAX_LOGGED_BODY);
        assert!(!cut.contains("tttt"), "{}", &cut[..200]);
        assert!(cut.contains("[access-token#1]"), "{}", &cut[..200]);
        assert!(cut.len() < MAX_LOGGED_BODY, "{} bytes", cut.len());
    }

    #[test]
    fn the_artifact_look_back_is_bounded() {
        // Many `Artifact>` and no `<`: each match looks back a bounded distance only.
        let body = "Artifact>".repeat(200_000);
        let started = std::time::Instant::now();
        assert!(xml_texts(&body, "Artifact").is_empty());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// A PEM block with a recognisable body, so a test can tell whether any of it survived.
    fn pem(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\nMIIB{body}\nQUJD{body}==\n-----END {label}-----\n")
    }

    #[test]
    fn a_private_key_after_a_certificate_is_redacted_and_the_certificate_kept() {
        let cert = pem("CERTIFICATE", "CertBody");
        let text = format!("chain:\n{cert}key:\n{}done", pem("PRIVATE KEY", "KeyBody"));
        assert_eq!(
            redact_private_keys(&text),
            format!("chain:\n{cert}key:\n[private-key]\ndone")
        );
        // The same through the log, in a recorded body.
        let log = ExchangeLog::new();
        let mut x = RawExchange::request(Party::Dva, Party::Tvs, "POST", "https://tvs/ars");
        x.request_body = Some(text);
        let seq = log.record(x);
        let body = log.entries()[seq].request_body.clone().unwrap();
        assert!(
            !body.contains("KeyBody") && body.contains("CertBody"),
            "{body}"
        );
    }

    #[test]
    fn every_key_of_several_in_a_row_is_redacted() {
        let labels = [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PRIVATE KEY",
        ];
        let text: String = labels
            .iter()
            .enumerate()
            .map(|(i, l)| pem(l, &format!("Key{i}Body")))
            .collect();
        let text = format!("{text}{}", pem("CERTIFICATE", "CertBody"));
        let out = redact_private_keys(&text);
        assert_eq!(out.matches("[private-key]").count(), 4, "{out}");
        assert!(
            !out.contains("PRIVATE KEY") && !out.contains("Body\n-----END P"),
            "{out}"
        );
        for i in 0..labels.len() {
            assert!(
                !out.contains(&format!("Key{i}Body")),
                "key {i} leaked: {out}"
            );
        }
        assert!(out.ends_with(&pem("CERTIFICATE", "CertBody")), "{out}");
    }

    #[test]
    fn a_private_key_in_a_json_string_is_redacted() {
        let json = serde_json::json!({
            "certificate": pem("CERTIFICATE", "CertBody"),
            "key": pem("PRIVATE KEY", "KeyBody"),
            "ec": pem("EC PRIVATE KEY", "EcBody"),
        })
        .to_string();
        assert!(json.contains("-----BEGIN PRIVATE KEY-----\\nMIIBKeyBody\\n"));
        let out = ExchangeLog::new().redact(&json);
        assert!(!out.contains("KeyBody") && !out.contains("EcBody"), "{out}");
        // Still JSON, with the certificate untouched.
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["key"], "[private-key]\n");
        assert_eq!(v["ec"], "[private-key]\n");
        assert_eq!(v["certificate"], pem("CERTIFICATE", "CertBody"));
    }

    #[test]
    fn an_unterminated_private_key_is_redacted_to_the_end() {
        let cut = "x -----BEGIN PRIVATE KEY-----\nMIIBKeyBody\nQUJDKey";
        assert_eq!(redact_private_keys(cut), "x [private-key]");
        // A missing END line swallows what follows, certificates included: safe, not pretty.
        let text = format!(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBKeyBody\n{}",
            pem("CERTIFICATE", "CertBody")
        );
        assert_eq!(redact_private_keys(&text), "[private-key]");
        // A broken header (no closing dashes) is still a key header.
        assert_eq!(
            redact_private_keys("a\n-----BEGIN PRIVATE KEY\nMIIBKeyBody\n"),
            "a\n[private-key]"
        );
        // Headers cut short, or at the very end, neither panic nor hide anything else.
        for text in [
            "-----BEGIN",
            "é-----BEGIN PRIV",
            "-----BEGIN CERTIFICATE",
            "-----BEGIN é",
        ] {
            assert_eq!(redact_private_keys(text), text);
        }
        // A key that the body cut goes through: its END line is gone, none of it survives.
        let key = pem("PRIVATE KEY", &"KeyBody".repeat(2000));
        let body = format!("{}{key}", " ".repeat(100));
        let out = redact_and_cut(&mut Secrets::default(), body, 120);
        assert!(
            !out.contains("KeyBody") && out.contains("[private-key]"),
            "{out}"
        );
    }

    /// Found by the `redactor` fuzz target (fuzz/): only the first pair of a cookie header was
    /// redacted, so a second cookie (`Cookie: a=1; sid=…`) and anything after the first `;` of
    /// a `Set-Cookie`, BSNs included, were logged as they were; and a known secret in the first
    /// cookie's name was kept (the minimised input: a learned code inside the name).
    #[test]
    fn every_cookie_of_a_cookie_header_is_redacted_and_set_cookie_attributes_too() {
        let log = ExchangeLog::new();
        record_url(
            &log,
            "https://pgo.example/cb?code=c0de-ZZ99_aa.bb~cc1234&state=s1",
        );
        let mut x = RawExchange::request(Party::Browser, Party::Dva, "GET", "https://dva/");
        x.response_headers.push((
            "cookie".into(),
            "https:Gc0de-ZZ99_aa.bb~cc1234pgo.example/cb?state=s1&code=".into(),
        ));
        let seq = log.record(x);
        assert_eq!(
            log.entries()[seq].response_headers[0].1,
            "https:G[code#1]pgo.example/cb?state=[redacted]"
        );

        let mut x = RawExchange::request(Party::Browser, Party::Dva, "GET", "https://dva/");
        x.request_headers.push((
            "Cookie".into(),
            "theme=dark; kt_session=s3ss10n-SECRET; bare-value-secret".into(),
        ));
        x.response_headers.push((
            "set-cookie".into(),
            "sid=abc; bsn=999911533; Path=/; HttpOnly".into(),
        ));
        let seq = log.record(x);
        let e = &log.entries()[seq];
        assert_eq!(
            e.request_headers[0].1,
            "theme=[redacted]; kt_session=[redacted]; [redacted]"
        );
        assert_eq!(
            e.response_headers[0].1,
            "sid=[redacted]; bsn=[bsn]; Path=/; HttpOnly"
        );
    }

    /// Found by the `redactor` fuzz target: a `code=` right before a key's BEGIN line taught the
    /// log `-----BEGIN` as a code, whose label then replaced the marker the key redaction
    /// looks for, and the whole key was logged.
    #[test]
    fn a_secret_learned_from_a_key_header_does_not_hide_the_key() {
        let log = ExchangeLog::new();
        let text = "{\"ks1&code=-----BEGIN ENCRYPTED PRIVATE KEY-----\\r\\nMIIEvwKeyBody\\r\\n-----END ENCRYPTED PRIVATE KEY-----";
        let out = log.redact(text);
        assert!(!out.contains("MIIEvwKeyBody"), "{out}");
        assert_eq!(out, "{\"ks1&code=[private-key]");
    }
}
