//! Hostile DVA, HTTP: redirects that loop or lead off the Whitelist or off https, heads too
//! large or too many, lengths that lie, compression bombs and Transfer-Encoding tricks.

use std::io::Write;

use tokio::io::AsyncWriteExt;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::hostile::{Case, Side, close, raw};

fn redirect_to(location: &str) -> ResponseTemplate {
    close(ResponseTemplate::new(302).insert_header("location", location))
}

/// A redirect loop on the authorization endpoint: the browser gives up after its hop limit.
#[test]
fn a_redirect_loop() {
    Case::new("redirect-loop")
        .mock(
            Mock::given(method("GET"))
                .and(path("/oauth/authorize"))
                .respond_with(redirect_to("/oauth/loop")),
        )
        .mock(Mock::given(path("/oauth/loop")).respond_with(redirect_to("/oauth/loop?again=1")))
        .expect("authorize", &["more than 25 hops"])
        .run();
}

/// A redirect to a host that is not on the Whitelist (nor the TVS, nor the redirect URI).
#[test]
fn a_redirect_to_a_host_off_the_whitelist() {
    Case::new("redirect-off-whitelist")
        .mock(
            Mock::given(method("GET"))
                .and(path("/oauth/authorize"))
                .respond_with(redirect_to("https://evil.koppeltest.test/login")),
        )
        .expect("authorize", &["off the whitelist"])
        .run();
}

/// A redirect to plain http on the DVA's own (whitelisted) host.
#[test]
fn a_redirect_to_plain_http() {
    Case::new("redirect-http")
        .mock(
            Mock::given(method("GET"))
                .and(path("/oauth/authorize"))
                .respond_with(redirect_to(
                    "http://medmij.conform.dva.koppeltest.test/oauth/login",
                )),
        )
        .expect("authorize", &["http: url"])
        .run();
}

/// A redirect to a `file:` URL: never opened.
#[test]
fn a_redirect_to_a_file_url() {
    Case::new("redirect-file")
        .mock(
            Mock::given(method("GET"))
                .and(path("/oauth/authorize"))
                .respond_with(redirect_to("file:///etc/passwd")),
        )
        .expect("authorize", &["file: url"])
        .run();
}

/// A thousand response headers.
#[test]
fn a_thousand_headers() {
    let mut t = ResponseTemplate::new(200);
    for i in 0..1000 {
        t = t.append_header(format!("x-hostile-{i}").as_str(), "a");
    }
    Case::new("thousand-headers")
        .mock(
            Mock::given(method("POST"))
                .and(path("/oauth/token"))
                .respond_with(t),
        )
        .expect("token", &["message head is too large"])
        .run();
}

/// One response header of a mebibyte.
#[test]
fn a_huge_header() {
    Case::new("huge-header")
        .mock(
            Mock::given(method("POST"))
                .and(path("/oauth/token"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("x-hostile", "a".repeat(1 << 20).as_str()),
                ),
        )
        .expect("token", &["message head is too large"])
        .run();
}

/// A Content-Length larger than the body, then a clean close: the body ends early.
#[test]
fn a_wrong_content_length() {
    Case::new("wrong-content-length")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{\"access_token\":\"x\"}")
                    .await;
                let _ = s.shutdown().await;
            }),
        )
        .expect("token", &["end of file", "eof", "incomplete", "closed before"])
        .run();
}

fn bomb(encoder: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    // 256 MiB of zeros, a few hundred KiB compressed.
    encoder(&vec![0u8; 256 << 20])
}

/// A gzip bomb on the resource endpoint: never inflated (the PGO asked for no content coding),
/// not even downloaded.
#[test]
fn a_gzip_bomb() {
    let body = bomb(|data| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    });
    Case::new("gzip-bomb")
        .mock(
            Mock::given(method("GET"))
                .and(path_regex("^/fhir/"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("content-encoding", "gzip")
                        .set_body_raw(body, "application/fhir+json"),
                ),
        )
        .expect("patient", &["content-encoding gzip"])
        .run();
}

/// A deflate bomb on the token endpoint.
#[test]
fn a_deflate_bomb() {
    let body = bomb(|data| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("deflate");
        e.finish().expect("deflate")
    });
    Case::new("deflate-bomb")
        .mock(
            Mock::given(method("POST"))
                .and(path("/oauth/token"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("content-encoding", "deflate")
                        .set_body_raw(body, "application/json"),
                ),
        )
        .expect("token", &["content-encoding deflate"])
        .run();
}

/// Transfer-Encoding trick: a chunk size that is no hex number.
#[test]
fn transfer_encoding_with_an_invalid_chunk_size() {
    Case::new("te-invalid-chunk")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            }),
        )
        .expect("token", &["chunk", "decoding response body", "invalid"])
        .run();
}

/// Transfer-Encoding trick: `chunked` together with a Content-Length, and a chunked body cut
/// off before its last chunk.
#[test]
fn transfer_encoding_chunked_with_content_length_cut_short() {
    Case::new("te-chunked-and-length")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n40\r\n{\"access_token\":")
                    .await;
                let _ = s.shutdown().await;
            }),
        )
        .expect("token", &["end of file", "eof", "incomplete", "decoding response body", "content-length"])
        .run();
}
