//! The exchange log's redactor, by its property: no surrounding text makes it leave a known
//! secret in place.
//!
//! The input is `switches(4 bytes) secret-seed NUL prefix NUL suffix`. The switches pick the
//! secret's kind and how the recorder learns it; the secret is then written between `prefix`
//! and `suffix` and that text goes everywhere the recorder takes text (`ExchangeLog::redact`,
//! the URL, a body cut at a chosen limit, a header, a transport error), and through
//! `exchange::redact_decoded`, what readers of decoded SAML messages use. The secret must not
//! occur in any of it.
//!
//! Kinds, and the shapes the redactor promises to catch:
//! - a token (16 or more of the characters OAuth tokens, codes and artifacts are made of),
//!   learned the way the recorder learns it: a `Bearer` header, a `code=` in a redirect, an
//!   `access_token` in a token response, a `refresh_token=` in a token request, or a SAML
//!   `Artifact` element;
//! - a valid test BSN (9999xxxxx, 11-check), standing alone: not inside a longer digit run;
//! - a PEM private key (four labels, three kinds of line end).
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use koppeltest::exchange::{Exchange, ExchangeLog, Party, RawExchange, redact_decoded};
use koppeltest_fuzz::{KEYS, Switches, switches};
use libfuzzer_sys::fuzz_target;

/// The base64 body of a real private key (PKCS#8), in 64-character lines.
static KEY_LINES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&KEYS.dv_enc.pkcs8);
    b64.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
});

/// A secret, the text every occurrence of which must be gone, and how the log learns it.
struct Secret {
    /// What must not occur in any output.
    needles: Vec<String>,
    /// The secret as written into the text.
    written: String,
    /// An exchange that teaches the log the secret, as a recorder would record it.
    teach: Option<RawExchange>,
    /// Only occurrences between non-digits count (a BSN is found by its shape: the same nine
    /// digits inside a longer number are not a BSN, and the surrounding text may hold one).
    standalone: bool,
}

fn token(seed: &str, on: Switches) -> Option<Secret> {
    let token: String = seed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        .collect();
    if token.len() < 16 {
        return None;
    }
    let route = u32::from(on.on(4)) | u32::from(on.on(5)) << 1 | u32::from(on.on(6)) << 2;
    let mut x = RawExchange::request(Party::Pgo, Party::Dva, "POST", "https://dva.example/token");
    match route % 5 {
        0 => x
            .request_headers
            .push(("Authorization".into(), format!("Bearer {token}"))),
        1 => x.url = format!("https://pgo.example/cb?code={token}&state=s1"),
        2 => {
            x.response_body = Some(format!(
                r#"{{"access_token":"{token}","token_type":"Bearer"}}"#
            ))
        }
        3 => x.request_body = Some(format!("grant_type=refresh_token&refresh_token={token}")),
        _ => {
            x.request_body = Some(format!(
                "<soap:Body><samlp:ArtifactResolve><samlp:Artifact>{token}</samlp:Artifact></samlp:ArtifactResolve></soap:Body>"
            ))
        }
    }
    Some(Secret {
        needles: vec![token.clone()],
        written: token,
        teach: Some(x),
        standalone: false,
    })
}

fn bsn(seed: &str) -> Option<Secret> {
    let digits: Vec<u32> = seed
        .chars()
        .filter_map(|c| c.to_digit(10))
        .take(4)
        .collect();
    if digits.len() < 4 {
        return None;
    }
    let mut d = vec![9, 9, 9, 9];
    d.extend(digits);
    // The 11-check: 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11).
    let sum: u32 = d.iter().zip((2..=9).rev()).map(|(d, w)| d * w).sum();
    let check = sum % 11;
    if check > 9 {
        return None;
    }
    d.push(check);
    let bsn: String = d
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
        .collect();
    assert!(koppeltest::ids::is_test_bsn(&bsn), "{bsn} is a test BSN");
    Some(Secret {
        needles: vec![bsn.clone()],
        written: bsn,
        teach: None,
        standalone: true,
    })
}

fn private_key(on: Switches) -> Secret {
    let label = [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ][usize::from(on.on(4)) | usize::from(on.on(5)) << 1];
    let eol = ["\n", "\r\n", "\\n", "\\r\\n"][usize::from(on.on(6)) | usize::from(on.on(7)) << 1];
    let mut pem = format!("-----BEGIN {label}-----{eol}");
    for line in KEY_LINES.iter() {
        pem.push_str(line);
        pem.push_str(eol);
    }
    pem.push_str(&format!("-----END {label}-----"));
    Secret {
        // Every full line (the last may be short enough to occur by chance).
        needles: KEY_LINES
            .iter()
            .filter(|l| l.len() >= 32)
            .cloned()
            .collect(),
        written: pem,
        teach: None,
        standalone: false,
    }
}

/// Every text of a recorded exchange, one per line, as written (not JSON-escaped: an escape
/// such as `\u0004` next to digits would make up a run that is not in the text).
fn texts(e: &Exchange) -> String {
    let headers = e.request_headers.iter().chain(&e.response_headers);
    [&e.url]
        .into_iter()
        .chain(headers.flat_map(|(k, v)| [k, v]))
        .chain(&e.request_body)
        .chain(&e.response_body)
        .chain(&e.transport_error)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_gone(secret: &Secret, what: &str, out: &str) {
    let digit_at = |i: Option<usize>| {
        i.and_then(|i| out.as_bytes().get(i))
            .is_some_and(u8::is_ascii_digit)
    };
    for needle in &secret.needles {
        let left = out.match_indices(needle.as_str()).find(|(at, _)| {
            !secret.standalone
                || !(digit_at(at.checked_sub(1)) || digit_at(Some(at + needle.len())))
        });
        assert!(
            left.is_none(),
            "{what} leaves the secret {needle:?} in place: {out:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((on, rest)) = switches(data) else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let mut parts = input.splitn(3, '\0');
    let (seed, prefix, suffix) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let kind = u32::from(on.on(0)) | u32::from(on.on(1)) << 1;
    let secret = match kind {
        0 | 1 => token(seed, on),
        2 => bsn(seed),
        _ => Some(private_key(on)),
    };
    let Some(mut secret) = secret else {
        return;
    };
    if kind == 2
        && (prefix.ends_with(|c: char| c.is_ascii_digit())
            || suffix.starts_with(|c: char| c.is_ascii_digit()))
    {
        // Inside a longer digit run: not a BSN by its shape (a phone number, an OID).
        return;
    }
    if kind >= 2
        && secret
            .needles
            .iter()
            .any(|n| prefix.contains(n.as_str()) || suffix.contains(n.as_str()))
    {
        // A shape is only promised where it is whole: key material outside a PEM block, or the
        // BSN's digits inside a longer number, have none (and a cut body may end such a number
        // after nine digits). The fuzzer learns the secret from the comparisons and writes it
        // into the surrounding text, so this is not rare.
        return;
    }
    let text = format!("{prefix}{}{suffix}", secret.written);
    let log = ExchangeLog::new();
    if let Some(x) = secret.teach.take() {
        let seq = log.record(x);
        let learned = texts(&log.entries()[seq]);
        assert_gone(
            &secret,
            "recording the secret where it is learned",
            &learned,
        );
    }
    assert_gone(&secret, "ExchangeLog::redact", &log.redact(&text));
    if kind >= 2 {
        // Shapes need no learning: a decoded message and a discarding log catch them too.
        assert_gone(&secret, "redact_decoded", &redact_decoded(&text));
        assert_gone(
            &secret,
            "a discarding log",
            &ExchangeLog::discarding().redact(&text),
        );
    }
    let header = [
        "location",
        "cookie",
        "set-cookie",
        "www-authenticate",
        "authorization",
    ][(usize::from(on.on(8)) | usize::from(on.on(9)) << 1 | usize::from(on.on(10)) << 2) % 5];
    let mut x = RawExchange::request(Party::Browser, Party::Dva, "GET", &text);
    x.request_body = Some(text.clone());
    x.response_body = Some(text.clone());
    x.response_headers.push((header.into(), text.clone()));
    x.transport_error = Some(text.clone());
    // Cut the logged body somewhere, so a secret that straddles the cut is tried too.
    if on.on(11) {
        x.logged_body_limit = usize::from(on.on(12)) << 4 | (rest.len() / 3);
    }
    let seq = log.record(x);
    let recorded = texts(&log.entries()[seq]);
    assert_gone(&secret, "ExchangeLog::record", &recorded);
});
