//! Hostile DVA, OAuth: token responses whose numbers or sizes are absurd, and an error redirect
//! with an enormous description. `token-issued` judges a token response that breaks RFC 6749 or
//! MedMij's bounds, so those end `fail` with the reason; none may `pass`, hang or overflow.

use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, ResponseTemplate};

use crate::hostile::{ACCESS_TOKEN, Case, REDIRECT_URI, close, token_response};

fn token(json: String) -> Mock {
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(close(token_response(&json)))
}

fn with_expires_in(e: &str) -> String {
    format!(
        r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"Bearer","expires_in":{e},"refresh_token":"r-0c8e","scope":"dewaard.huisartspraktijk.utrecht~49"}}"#
    )
}

/// `expires_in` of −1.
#[test]
fn a_token_that_expires_in_minus_one() {
    Case::new("expires-in-negative")
        .mock(token(with_expires_in("-1")))
        .expect("token", &["expires_in is -1"])
        .may_fail()
        .run();
}

/// `expires_in` of 10¹² seconds (and the largest u64 in a second case below): no overflow.
#[test]
fn a_token_that_expires_in_ten_to_the_twelfth() {
    Case::new("expires-in-huge")
        .mock(token(with_expires_in("1000000000000")))
        .expect("token", &["expires_in is 1000000000000"])
        .may_fail()
        .run();
}

/// `expires_in` of u64::MAX, with a scenario that waits the token's lifetime out: the wait is
/// computed without overflow and refused as longer than the matrix allows.
#[test]
fn a_token_that_expires_in_u64_max_and_is_waited_for() {
    Case::new("expires-in-u64-max")
        .mock(token(with_expires_in(&u64::MAX.to_string())))
        .scenario(
            "wait.toml",
            r#"id = "hostile.wait"
title = "Wait out the hostile token"
description = "A wait step on the DVA's own expires_in."
[[step]]
id = "authorize"
action = "authorize"
[[step]]
id = "token"
action = "token"
code_from = "authorize"
[[step]]
id = "wait"
action = "wait"
past = "access-token"
token_from = "token"
[[check]]
kind = "token-issued"
step = "token"
"#,
        )
        .expect("token", &["expires_in is 18446744073709551615"])
        .may_fail()
        .run();
}

/// An access token of a mebibyte: refused by the judge as absurd or by the resource server's
/// head limit, and in no report (the token is a secret, by position).
#[test]
fn an_access_token_of_a_mebibyte() {
    let huge = "t".repeat(1 << 20);
    Case::new("megabyte-token")
        .mock(token(format!(
            r#"{{"access_token":"{huge}","token_type":"Bearer","expires_in":900,"refresh_token":"r-0c8e","scope":"dewaard.huisartspraktijk.utrecht~49"}}"#
        )))
        .expect("patient", &["no response", "431", "too large", "header"])
        .secret(&huge[..4096])
        .may_fail()
        .run();
}

/// An error redirect with 100 KB of `error_description`. `fail`: `code-issued` judges the
/// error as no code; the description does not blow up the reports.
#[test]
fn an_error_redirect_with_a_hundred_kilobytes_of_description() {
    Case::new("huge-error-description")
        .mock(
            Mock::given(method("GET"))
                .and(path("/oauth/authorize"))
                .respond_with(|req: &Request| {
                    let state = req
                        .url
                        .query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    close(ResponseTemplate::new(302).insert_header(
                        "location",
                        format!(
                            "{REDIRECT_URI}?error=access_denied&error_description={}&state={state}",
                            "x".repeat(100_000)
                        )
                        .as_str(),
                    ))
                }),
        )
        .expect("authorize", &["access_denied", "error"])
        .may_fail()
        .run();
}
