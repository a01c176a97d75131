//! One scenario's recorded exchanges as a stable, readable text: what a snapshot holds.
//!
//! The exchanges arrive already redacted (tokens, codes, artifacts, cookies and BSNs are labels
//! such as `[code#1]`). Normalising then takes out what differs between two runs of the same
//! DVA answering the same way:
//! - **bodies** are pretty-printed: JSON with sorted keys, XML indented (the SAML messages in a
//!   form value or a hidden field decoded first), HTML reduced to its title, its text and its
//!   forms; form bodies and query strings one parameter per line;
//! - **headers** are sorted by name, and the volatile ones (`date`, `content-length`, …) dropped;
//! - **opaque values** are labels numbered by first appearance: UUIDs `[uuid#1]`, random hex
//!   (state, SAML IDs, fingerprints) `[hex#1]`, signature and cipher values `[base64#1]`, ports
//!   `[port]`; the same value gets the same label throughout one snapshot;
//! - **dates** near the run are written relative to it, in the fixtures' own notation:
//!   `@today-30d` for a date, `@now-20d` for a dateTime (the day rounded), `@now` for the
//!   moment of the run. Dates further than ten years away (birth dates) stay as they are.
//!
//! The result changes when the DVA answers differently (a status, a header, an error text, a
//! resource, a form field), not when only its random values or the clock do.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine;
use regex::{Captures, Regex};
use time::{Date, OffsetDateTime};

use crate::exchange::{Exchange, Party};

/// Response headers whose value differs on every answer, or that the body already shows.
const VOLATILE_HEADERS: &[&str] = &[
    "age",
    "connection",
    "content-length",
    "date",
    "expires",
    "keep-alive",
    "last-modified",
    "server-timing",
    "transfer-encoding",
];

/// XML elements whose text is an opaque value that differs on every run (a digest over a
/// random ID, a signature, a fresh certificate, a ciphertext).
const OPAQUE_ELEMENTS: &[&str] = &[
    "CipherValue",
    "DigestValue",
    "Modulus",
    "SignatureValue",
    "X509Certificate",
];

/// XML is shown to this depth; deeper elements are summarised in one line.
const MAX_XML_DEPTH: usize = crate::limits::MAX_XML_DEPTH;

/// Form fields and query parameters that carry a base64-encoded SAML message.
const SAML_FIELDS: &[&str] = &["SAMLRequest", "SAMLResponse"];

/// Dates further than this from the run are kept as written (birth dates, far history).
const RELATIVE_WITHIN_DAYS: i64 = 3653;

/// Marks an opaque value for the labeller; never occurs in a recorded body.
const OPAQUE_OPEN: char = '\u{2993}';
const OPAQUE_CLOSE: char = '\u{2994}';

/// The moment the snapshot's dates are relative to: the run's start (the fixtures' dates were
/// rendered then too).
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    pub now: OffsetDateTime,
    pub today: Date,
}

impl Reference {
    pub fn at(now: OffsetDateTime) -> Reference {
        let now = now.to_offset(time::UtcOffset::UTC);
        Reference {
            now,
            today: now.date(),
        }
    }
}

/// The normalised text of a scenario's exchanges, in order. The parties' notes (`NOTE`: a TLS
/// handshake refused, a request turned away) come last, sorted and without their step: a
/// server notes a refused handshake whenever its task gets to it, during that step or a later
/// one, and parallel probes finish in any order. Sequence numbers are left out, so one
/// exchange more or less shows as itself in a diff, not as a renumbering of all after it.
pub fn exchanges(exchanges: &[Exchange], reference: Reference) -> String {
    let mut out = String::new();
    let mut notes: Vec<String> = Vec::new();
    for x in exchanges {
        let mut block = String::new();
        exchange(&mut block, x, reference);
        if x.method == "NOTE" {
            notes.push(block);
        } else {
            out.push_str(&block);
        }
    }
    notes.sort();
    out.extend(notes);
    label(&out, reference)
}

fn exchange(out: &mut String, x: &Exchange, reference: Reference) {
    let step = if x.method == "NOTE" {
        "note"
    } else {
        x.step.as_deref().unwrap_or("-")
    };
    let _ = writeln!(out, "── {step} · {} → {}", party(x.from), party(x.to));
    let (base, query) = match x.url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (x.url.as_str(), None),
    };
    let _ = writeln!(out, "{} {base}", x.method);
    if let Some(q) = query {
        params(out, "  ?", q);
    }
    headers(out, "  > ", &x.request_headers);
    if let Some(body) = x.request_body.as_deref().filter(|b| !b.is_empty()) {
        body_text(out, body, content_type(&x.request_headers));
    }
    if let Some(error) = &x.transport_error {
        let _ = writeln!(out, "  transport error: {}", tls_times(error, reference));
    }
    if let Some(status) = x.status {
        let _ = writeln!(out, "  < {status}");
    }
    headers(out, "  < ", &x.response_headers);
    if let Some(body) = x.response_body.as_deref().filter(|b| !b.is_empty()) {
        if x.method == "NOTE" {
            body_text(
                out,
                &tls_times(body, reference),
                content_type(&x.response_headers),
            );
        } else {
            body_text(out, body, content_type(&x.response_headers));
        }
    }
    if let Some(c) = &x.client_certificate {
        let _ = writeln!(
            out,
            "  client certificate: {} · {} · sha256 {}",
            c.subject,
            c.dns_names.join(", "),
            c.sha256
        );
    }
    out.push('\n');
}

/// A party's note or a transport error as koppeltest's TLS stack words it: its unix times
/// (`verification time 1796105629 (UNIX)`) relative to the run, its second counts as `[n]`.
/// Only there: in a DVA's own answers such numbers are the DVA's.
fn tls_times(text: &str, reference: Reference) -> String {
    let text = UNIX_TIME.replace_all(text, |c: &Captures<'_>| {
        c[0].parse::<i64>()
            .ok()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|at| relative("@now", rounded_days((at - reference.now).whole_seconds())))
            .unwrap_or_else(|| c[0].to_string())
    });
    SECONDS.replace_all(&text, "[n] seconds").into_owned()
}

fn party(p: Party) -> &'static str {
    match p {
        Party::Browser => "browser",
        Party::Pgo => "pgo",
        Party::Dva => "dva",
        Party::Tvs => "tvs",
    }
}

fn content_type(headers: &[(String, String)]) -> &str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map_or("", |(_, v)| v.as_str())
}

fn headers(out: &mut String, prefix: &str, headers: &[(String, String)]) {
    let mut sorted: Vec<(String, &str)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .filter(|(k, _)| !VOLATILE_HEADERS.contains(&k.as_str()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in sorted {
        let _ = writeln!(out, "{prefix}{k}: {v}");
    }
}

/// One `key = value` line per parameter, decoded; SAML messages decoded and indented.
fn params(out: &mut String, prefix: &str, encoded: &str) {
    for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()) {
        if SAML_FIELDS.contains(&k.as_ref())
            && let Some(xml) = saml_message(&v)
        {
            let _ = writeln!(out, "{prefix}{k} = (decoded)");
            indent(out, &xml, "      ");
        } else {
            let _ = writeln!(out, "{prefix}{k} = {v}");
        }
    }
}

/// The SAML message in a base64 form value, pretty-printed; `None` when it is not one. The
/// recorder never saw inside the base64, so what it redacts by shape in plain text (BSNs,
/// private keys) is redacted here the same way: for privacy, and so an ID reads the same
/// decoded as in a plain body.
fn saml_message(value: &str) -> Option<String> {
    let compact: String = value.split_whitespace().collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    xml(&crate::exchange::redact_decoded(&text))
}

fn indent(out: &mut String, text: &str, prefix: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{prefix}{line}");
    }
}

/// The recorder's mark after a body cut at its logging limit.
const TRUNCATED: &str = "\n[… truncated: ";

/// How much less of a cut body than the recorder kept goes into the snapshot.
const CUT_SLACK: usize = 64;

fn body_text(out: &mut String, body: &str, content_type: &str) {
    if let Some(at) = body.rfind(TRUNCATED) {
        // The recorder cut after redacting, at a fixed length: where it replaced digits inside
        // a random value by the shorter BSN label, it kept a few characters more. With those
        // digits put back (as placeholders), the cut is at the same place in every run.
        // Then back to the last delimiter, so no half value (which no pattern would label) is
        // left at the end. The byte count of the whole body is left out: a value of another
        // length changes it.
        let restored = unsplit_bsn(&body[..at]);
        let mut keep = at.saturating_sub(CUT_SLACK).min(restored.len());
        while !restored.is_char_boundary(keep) {
            keep -= 1;
        }
        let keep = restored[..keep]
            .rfind([',', '"', '<', '>', ' ', '\n', '{', '}', '[', ']', '&'])
            .unwrap_or(0);
        let _ = writeln!(out, "  body (cut by the recorder):");
        indent(out, &restored[..keep], "    ");
        let _ = writeln!(out, "    [… cut]");
        return;
    }
    let ct = content_type.to_ascii_lowercase();
    let trimmed = body.trim_start();
    let lower_start: String = trimmed.chars().take(15).collect::<String>().to_lowercase();
    let rendered = if ct.contains("json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .map(|t| ("json", t))
    } else if ct.contains("html")
        || lower_start.starts_with("<!doctype html")
        || lower_start.starts_with("<html")
    {
        Some(("html", html(body)))
    } else if ct.contains("x-www-form-urlencoded") {
        let mut t = String::new();
        params(&mut t, "", body);
        Some(("form", t))
    } else if ct.contains("xml") || trimmed.starts_with('<') {
        xml(body).map(|t| ("xml", t))
    } else {
        None
    };
    match rendered {
        Some((kind, text)) => {
            let _ = writeln!(out, "  body ({kind}):");
            indent(out, text.trim_end(), "    ");
        }
        None => {
            let _ = writeln!(out, "  body (text):");
            indent(out, body.trim_end(), "    ");
        }
    }
}

/// XML indented one element per line; `None` when it does not parse (then the caller shows it
/// as text). A DOCTYPE is not expanded: such a document is shown as text.
fn xml(text: &str) -> Option<String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100_000,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).ok()?;
    let mut out = String::new();
    element(&mut out, doc.root_element(), 0, None);
    Some(out)
}

fn qualified(node: roxmltree::Node<'_, '_>, ns: Option<&str>, local: &str) -> String {
    match ns.and_then(|ns| node.lookup_prefix(ns)) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}:{local}"),
        _ => local.to_string(),
    }
}

fn element(
    out: &mut String,
    node: roxmltree::Node<'_, '_>,
    depth: usize,
    parent: Option<roxmltree::Node<'_, '_>>,
) {
    let pad = "  ".repeat(depth);
    let tag = node.tag_name();
    let name = qualified(node, tag.namespace(), tag.name());
    let mut open = format!("{pad}<{name}");
    // Namespace declarations where they come into scope.
    for ns in node.namespaces() {
        let inherited = parent.is_some_and(|p| {
            p.namespaces()
                .any(|q| q.name() == ns.name() && q.uri() == ns.uri())
        });
        if !inherited {
            match ns.name() {
                Some(prefix) => {
                    let _ = write!(open, " xmlns:{prefix}=\"{}\"", ns.uri());
                }
                None => {
                    let _ = write!(open, " xmlns=\"{}\"", ns.uri());
                }
            }
        }
    }
    for a in node.attributes() {
        let _ = write!(
            open,
            " {}=\"{}\"",
            qualified(node, a.namespace(), a.name()),
            a.value()
        );
    }
    let children: Vec<roxmltree::Node<'_, '_>> = node
        .children()
        .filter(|c| !(c.is_text() && c.text().is_some_and(|t| t.trim().is_empty())))
        .collect();
    let opaque = OPAQUE_ELEMENTS.contains(&tag.name());
    match children.as_slice() {
        [] => {
            let _ = writeln!(out, "{open}/>");
        }
        [only] if only.is_text() => {
            let text = only.text().unwrap_or("").trim();
            let text = if opaque {
                let compact: String = text.split_whitespace().collect();
                format!("{OPAQUE_OPEN}{compact}{OPAQUE_CLOSE}")
            } else {
                text.to_string()
            };
            let _ = writeln!(out, "{open}>{text}</{name}>");
        }
        _ => {
            let _ = writeln!(out, "{open}>");
            for child in children {
                if child.is_element() && depth + 1 >= MAX_XML_DEPTH {
                    // roxmltree bounds the node count, not the depth: a hostile body nested
                    // thousands deep must not exhaust the stack here.
                    let _ = writeln!(out, "{pad}  … (nested deeper than {MAX_XML_DEPTH} levels)");
                } else if child.is_element() {
                    element(out, child, depth + 1, Some(node));
                } else if child.is_text() {
                    let _ = writeln!(out, "{pad}  {}", child.text().unwrap_or("").trim());
                } else if child.is_comment() {
                    let _ = writeln!(out, "{pad}  <!--{}-->", child.text().unwrap_or(""));
                } else if let Some(pi) = child.pi() {
                    let _ = writeln!(out, "{pad}  <?{} {}?>", pi.target, pi.value.unwrap_or(""));
                }
            }
            let _ = writeln!(out, "{pad}</{name}>");
        }
    }
}

/// An HTML page reduced to what a person reads and what a browser submits: its title, its
/// text (scripts and styles left out) and each form with its fields.
fn html(body: &str) -> String {
    use scraper::{Html, Selector};
    let doc = Html::parse_document(body);
    let mut out = String::new();
    let depth = crate::pgo::browser::nesting_depth(&doc);
    if depth > crate::limits::MAX_HTML_DEPTH {
        // Every text node's ancestor walk below would make this quadratic.
        let _ = writeln!(out, "html nested {depth} deep: not shown");
        return out;
    }
    let select = |s: &str| Selector::parse(s).ok();
    if let Some(title) = select("title").and_then(|s| doc.select(&s).next()) {
        let t = collapse(&title.text().collect::<String>());
        let _ = writeln!(out, "title: {t}");
    }
    if let Some(refresh) = select("meta[http-equiv]").and_then(|s| {
        doc.select(&s).find(|m| {
            m.value()
                .attr("http-equiv")
                .is_some_and(|v| v.eq_ignore_ascii_case("refresh"))
        })
    }) {
        let _ = writeln!(
            out,
            "meta refresh: {}",
            refresh.value().attr("content").unwrap_or("")
        );
    }
    if let Some(body_sel) = select("body") {
        for b in doc.select(&body_sel) {
            for node in b.descendants() {
                let Some(text) = node.value().as_text() else {
                    continue;
                };
                let hidden = node.ancestors().any(|a| {
                    a.value()
                        .as_element()
                        .is_some_and(|e| matches!(e.name(), "script" | "style" | "template"))
                });
                let t = collapse(text);
                if !hidden && !t.is_empty() {
                    let _ = writeln!(out, "text: {t}");
                }
            }
        }
    }
    if let (Some(forms), Some(fields)) = (select("form"), select("input, select, textarea, button"))
    {
        for form in doc.select(&forms) {
            let attr = |k: &str| form.value().attr(k).unwrap_or("");
            let _ = writeln!(
                out,
                "form{} {} {}",
                match form.value().attr("id") {
                    Some(id) => format!(" #{id}"),
                    None => String::new(),
                },
                attr("method").to_ascii_uppercase(),
                attr("action")
            );
            for f in form.select(&fields) {
                let e = f.value();
                let name = e.attr("name").unwrap_or("");
                let kind = e.attr("type").unwrap_or(e.name());
                let value = e.attr("value").unwrap_or("");
                if SAML_FIELDS.contains(&name)
                    && let Some(xml) = saml_message(value)
                {
                    let _ = writeln!(out, "  {name} ({kind}) = (decoded)");
                    indent(&mut out, &xml, "      ");
                } else {
                    let _ = writeln!(out, "  {name} ({kind}) = {value}");
                }
            }
        }
    }
    out
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
        .expect("uuid pattern")
});
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?")
        .expect("date-time pattern")
});
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d{4})-(\d{2})-(\d{2})").expect("date pattern"));
static OPAQUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("{OPAQUE_OPEN}([^{OPAQUE_CLOSE}]*){OPAQUE_CLOSE}")).expect("opaque pattern")
});
/// Long opaque values: base64, or base64url (anti-forgery fields, tokens of a vendor's own).
static LONG_BASE64: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_-]{100,}={0,2}").expect("base64 pattern"));
/// An HTTP date (`Tue, 01 Dec 2026 05:49:16 GMT`), as a cookie's `Expires` carries it.
static HTTP_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Z][a-z]{2}, \d{2}[ -][A-Z][a-z]{2}[ -]\d{4} \d{2}:\d{2}:\d{2} GMT")
        .expect("http-date pattern")
});
/// A SHA-256 digest in base64 (a DigestValue shown as text, or hidden in a comment).
static DIGEST_BASE64: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/]{43}=").expect("digest pattern"));
/// Unix times in TLS error texts (`verification time 1796105629 (UNIX)`).
static UNIX_TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b1[0-9]{9}\b").expect("unix time pattern"));
/// Second counts in the same texts (`86400 seconds ago`).
static SECONDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d+ seconds\b").expect("seconds pattern"));
static HEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9a-f]{16,}|[0-9A-F]{16,}").expect("hex pattern"));
/// Durations measured by the harness (`96 probes in 54 ms`).
static MILLIS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d+ ms\b").expect("duration pattern"));
/// The recorder's BSN label where it cut into a random value: a 9-digit run inside random hex
/// that passes the 11-check is redacted too.
static BSN_IN_HEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-fA-F]\[bsn\]|\[bsn\][0-9a-fA-F]").expect("bsn-in-hex pattern")
});
static PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(127\.0\.0\.1|localhost|\[::1\]|\.test):\d{2,5}\b").expect("port pattern")
});

/// The recorder's BSN labels inside random values, as nine placeholder digits again.
fn unsplit_bsn(text: &str) -> String {
    let once = BSN_IN_HEX.replace_all(text, |c: &Captures<'_>| c[0].replace("[bsn]", "000000000"));
    // Twice: the matches of one pass cannot overlap (`a[bsn]b[bsn]c`).
    BSN_IN_HEX
        .replace_all(&once, |c: &Captures<'_>| c[0].replace("[bsn]", "000000000"))
        .into_owned()
}

/// Numbers each distinct value of a kind by first appearance.
#[derive(Default)]
struct Labels {
    seen: HashMap<(&'static str, String), usize>,
    next: HashMap<&'static str, usize>,
}

impl Labels {
    fn of(&mut self, kind: &'static str, value: &str) -> String {
        let key = (kind, value.to_string());
        let n = match self.seen.get(&key) {
            Some(n) => *n,
            None => {
                let n = self.next.entry(kind).or_insert(0);
                *n += 1;
                let n = *n;
                self.seen.insert(key, n);
                n
            }
        };
        format!("[{kind}#{n}]")
    }
}

fn label(text: &str, reference: Reference) -> String {
    let mut labels = Labels::default();
    // Where the recorder's BSN label cut a random value in two, make it whole again, so the
    // value is labelled like any other.
    let text = unsplit_bsn(text);
    let text = MILLIS.replace_all(&text, "[n] ms");
    let text = OPAQUE.replace_all(&text, |c: &Captures<'_>| labels.of("base64", &c[1]));
    let text = LONG_BASE64.replace_all(&text, |c: &Captures<'_>| labels.of("base64", &c[0]));
    let text = DIGEST_BASE64.replace_all(&text, |c: &Captures<'_>| labels.of("base64", &c[0]));
    let text = HTTP_DATE.replace_all(&text, "[http-date]");
    let text = UUID.replace_all(&text, |c: &Captures<'_>| labels.of("uuid", &c[0]));
    let text = DATE_TIME.replace_all(&text, |c: &Captures<'_>| {
        relative_instant(c, reference).unwrap_or_else(|| c[0].to_string())
    });
    let text = DATE.replace_all(&text, |c: &Captures<'_>| {
        relative_date(c, reference).unwrap_or_else(|| c[0].to_string())
    });
    let text = PORT.replace_all(&text, "$1:[port]");
    hex(&text, &mut labels)
}

fn date_of(c: &Captures<'_>) -> Option<Date> {
    let month = time::Month::try_from(c[2].parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(c[1].parse().ok()?, month, c[3].parse().ok()?).ok()
}

fn relative(anchor: &str, days: i64) -> Option<String> {
    (days.abs() <= RELATIVE_WITHIN_DAYS).then(|| match days {
        0 => anchor.to_string(),
        d if d > 0 => format!("{anchor}+{d}d"),
        d => format!("{anchor}{d}d"),
    })
}

fn relative_date(c: &Captures<'_>, reference: Reference) -> Option<String> {
    let date = date_of(c)?;
    relative("@today", (date - reference.today).whole_days())
}

fn relative_instant(c: &Captures<'_>, reference: Reference) -> Option<String> {
    let date = date_of(c)?;
    let time =
        time::Time::from_hms(c[4].parse().ok()?, c[5].parse().ok()?, c[6].parse().ok()?).ok()?;
    let offset = match c.get(7).map(|m| m.as_str()) {
        None | Some("Z") => time::UtcOffset::UTC,
        Some(o) => {
            let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
            let h: i8 = o.get(1..3)?.parse().ok()?;
            let m: i8 = o.get(4..6)?.parse().ok()?;
            time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    let at = date.with_time(time).assume_offset(offset);
    relative("@now", rounded_days((at - reference.now).whole_seconds()))
}

/// Rounded to the nearest day: the fixtures' `@now-20d` and the run's own timestamps.
fn rounded_days(seconds: i64) -> i64 {
    (seconds + seconds.signum() * 43_200) / 86_400
}

/// Random hex of 16 or more digits (state, SAML IDs, handles, fingerprints), when it stands
/// alone: not part of a longer word. A leading underscore (SAML IDs) is kept.
fn hex(text: &str, labels: &mut Labels) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let bytes = text.as_bytes();
    for m in HEX.find_iter(text) {
        let before = m.start().checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(m.end()).copied();
        let alone = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
        // A percent-escape just before (`state%3D59678c…`) ends a word too.
        let escaped = m.start() >= 3
            && bytes[m.start() - 3] == b'%'
            && bytes[m.start() - 2].is_ascii_hexdigit()
            && bytes[m.start() - 1].is_ascii_hexdigit();
        if (alone(before) || escaped) && alone(after) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&labels.of("hex", m.as_str()));
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference::at(time::macros::datetime!(2026-12-01 05:49:15 UTC))
    }

    fn x(seq: usize, url: &str, body: &str, ct: &str) -> Exchange {
        Exchange {
            seq,
            step: Some("authorize".into()),
            from: Party::Browser,
            to: Party::Dva,
            method: "GET".into(),
            url: url.into(),
            request_headers: vec![("Accept".into(), "text/html".into())],
            request_body: None,
            status: Some(200),
            response_headers: vec![
                ("date".into(), "Tue, 01 Dec 2026 05:49:16 GMT".into()),
                ("content-type".into(), ct.into()),
                ("content-length".into(), body.len().to_string()),
            ],
            response_body: Some(body.into()),
            transport_error: None,
            elapsed_ms: Some(12),
            recorded_at: Some("2026-12-01T05:49:16.78Z".into()),
            client_certificate: None,
            ticks: None,
        }
    }

    #[test]
    fn random_values_and_the_clock_become_labels_and_relative_dates() {
        let json = r#"{"resourceType":"Bundle","id":"30ddf57c-4813-461c-8dfa-7703350c05c4","meta":{"lastUpdated":"2026-12-01T05:49:16Z"},"entry":[{"resource":{"birthDate":"1961-04-12","effectiveDateTime":"2026-11-11T05:49:14Z","date":"2026-11-01"}}]}"#;
        let one = exchanges(
            &[x(
                0,
                "https://dva.test/fhir/X?state=59678c898bb25cda619ae23b&periodofuse=ge2026-12-01",
                json,
                "application/fhir+json",
            )],
            reference(),
        );
        assert!(one.contains("\"id\": \"[uuid#1]\""), "{one}");
        assert!(one.contains("\"lastUpdated\": \"@now\""), "{one}");
        assert!(one.contains("\"effectiveDateTime\": \"@now-20d\""), "{one}");
        assert!(one.contains("\"date\": \"@today-30d\""), "{one}");
        assert!(one.contains("\"birthDate\": \"1961-04-12\""), "{one}");
        assert!(one.contains("?state = [hex#1]"), "{one}");
        assert!(one.contains("?periodofuse = ge@today"), "{one}");
        assert!(
            !one.contains("content-length") && !one.contains("GMT"),
            "{one}"
        );
        // The same answer with other random values and a clock a few seconds on: the same text.
        let json2 = json
            .replace(
                "30ddf57c-4813-461c-8dfa-7703350c05c4",
                "a16f4c06-605b-41c0-b5f9-4e14d4f0047c",
            )
            .replace("05:49:16Z", "05:49:19Z");
        let two = exchanges(
            &[x(
                0,
                "https://dva.test/fhir/X?state=0123456789abcdef01234567&periodofuse=ge2026-12-01",
                &json2,
                "application/fhir+json",
            )],
            reference(),
        );
        assert_eq!(one, two);
        // A changed answer is not normalised away.
        let three = exchanges(
            &[x(
                0,
                "https://dva.test/fhir/X?state=0123456789abcdef01234567&periodofuse=ge2026-12-01",
                &json2.replace("1961-04-12", "1961-04-13"),
                "application/fhir+json",
            )],
            reference(),
        );
        assert_ne!(one, three);
    }

    #[test]
    fn saml_in_a_form_is_decoded_and_its_opaque_values_labelled() {
        let xml = r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_188a0c701b79f049491de115dbf5ee70559de478" IssueInstant="2026-12-01T05:49:16Z"><ds:Signature><ds:SignatureValue>QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=</ds:SignatureValue></ds:Signature></samlp:AuthnRequest>"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
        let page = format!(
            r#"<!doctype html><html><head><title>Doorsturen</title></head><body><h1>Doorsturen naar inloggen</h1><form id="kt-saml-post" method="post" action="https://tvs.test:8443/sso"><input type="hidden" name="SAMLRequest" value="{b64}"><script>document.forms[0].submit()</script></form></body></html>"#
        );
        let text = exchanges(
            &[x(0, "https://dva.test/oauth/login", &page, "text/html")],
            reference(),
        );
        assert!(text.contains("title: Doorsturen"), "{text}");
        assert!(text.contains("text: Doorsturen naar inloggen"), "{text}");
        assert!(!text.contains("submit()"), "scripts are not text: {text}");
        assert!(
            text.contains("form #kt-saml-post POST https://tvs.test:[port]/sso"),
            "{text}"
        );
        assert!(text.contains("SAMLRequest (hidden) = (decoded)"), "{text}");
        assert!(text.contains("ID=\"_[hex#1]\""), "{text}");
        assert!(text.contains("IssueInstant=\"@now\""), "{text}");
        assert!(
            text.contains("<ds:SignatureValue>[base64#1]</ds:SignatureValue>"),
            "{text}"
        );
    }

    #[test]
    fn a_bsn_label_inside_a_random_value_and_parallel_notes_do_not_drift() {
        let a = x(
            0,
            "https://dva.test/x?state=9977f3b[bsn]&bsn=[bsn]",
            "",
            "text/plain",
        );
        let b = x(
            0,
            "https://dva.test/x?state=0123456789abcdef&bsn=[bsn]",
            "",
            "text/plain",
        );
        let (ta, tb) = (exchanges(&[a], reference()), exchanges(&[b], reference()));
        assert_eq!(ta, tb);
        assert!(
            ta.contains("?state = [hex#1]") && ta.contains("?bsn = [bsn]"),
            "{ta}"
        );
        // The same in upper-case hex, which the hex rule labels too.
        let a = x(0, "https://dva.test/x?id=9977F3B[bsn]", "", "text/plain");
        let b = x(
            0,
            "https://dva.test/x?id=0123456789ABCDEF",
            "",
            "text/plain",
        );
        assert_eq!(exchanges(&[a], reference()), exchanges(&[b], reference()));
        let note = |seq: usize, text: &str| Exchange {
            method: "NOTE".into(),
            url: String::new(),
            response_body: Some(format!("{text} in 54 ms")),
            ..x(seq, "", "", "text/plain")
        };
        let one = exchanges(&[note(0, "refused: A"), note(1, "refused: B")], reference());
        let two = exchanges(&[note(0, "refused: B"), note(1, "refused: A")], reference());
        assert_eq!(one, two);
        assert!(one.contains("refused: A in [n] ms"), "{one}");
    }

    #[test]
    fn hostile_nesting_is_summarised_and_real_dva_volatiles_are_labelled() {
        // Deeper than any stack would take by recursion; well under the parser's node limit.
        let deep = format!("{}{}", "<a>".repeat(20_000), "</a>".repeat(20_000));
        let text = exchanges(
            &[x(0, "https://dva.test/x", &deep, "text/xml")],
            reference(),
        );
        assert!(
            text.contains("nested deeper than 64 levels"),
            "{}",
            &text[..400]
        );
        let headers = |cookie: &str, state: &str| {
            let mut e = x(0, "https://dva.test/cb", "", "text/plain");
            e.response_headers.extend([
                (
                    "set-cookie".to_string(),
                    format!("sid=[redacted]; Expires={cookie}"),
                ),
                (
                    "location".to_string(),
                    format!("https://pgo.test/cb?next=%2Fa%3Fs%3D{state}"),
                ),
                ("etag".to_string(), "\"8F3A9C0D1E2B4A5F6071\"".to_string()),
            ]);
            exchanges(&[e], reference())
        };
        let one = headers("Wed, 02 Dec 2026 05:49:16 GMT", "59678c898bb25cda619ae23b");
        let two = headers("Wed, 02 Dec 2026 07:01:02 GMT", "0123456789abcdef01234567");
        assert_eq!(one, two);
        assert!(one.contains("Expires=[http-date]"), "{one}");
        assert!(
            one.contains("%3D[hex#2]"),
            "hex after a percent-escape: {one}"
        );
        assert!(one.contains("etag: \"[hex#1]\""), "uppercase hex: {one}");
    }

    #[test]
    fn unparseable_bodies_are_shown_as_text_and_a_doctype_is_not_expanded() {
        let body = "<!DOCTYPE x [<!ENTITY e \"boom\">]><x>&e;</x>";
        let text = exchanges(&[x(0, "https://dva.test/x", body, "text/xml")], reference());
        assert!(text.contains("body (text):"), "{text}");
        assert!(
            text.contains("<x>&e;</x>"),
            "the entity stays unexpanded: {text}"
        );
        let truncated = "{\"a\": [1, 2,\n[… truncated: 99999 bytes in all]";
        let text = exchanges(
            &[x(0, "https://dva.test/x", truncated, "application/json")],
            reference(),
        );
        assert!(
            text.contains("body (cut by the recorder") && text.contains("[… cut]"),
            "{text}"
        );
    }
}
