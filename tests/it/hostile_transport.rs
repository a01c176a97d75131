//! Hostile DVA, transport and TLS: a peer that drips, never ends, floods, resets, speaks
//! garbage inside or instead of TLS, or says nothing at all. Each is bounded by the matrix's
//! request time-out (`timeouts.request_ms`) or the body limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::sleep;

use crate::hostile::{Case, Side, raw, tcp};

/// How long a raw handler keeps a connection open when it means to hang: far past the run's
/// request time-out, short of the outer one.
const HANG: Duration = Duration::from_secs(60);

/// Slowloris: the response head one byte per second. The request time-out ends it.
#[test]
fn slowloris_headers_one_byte_per_second() {
    Case::new("slowloris")
        .raw(
            Side::Front,
            "/oauth/authorize",
            raw(|mut s, _| async move {
                for b in b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: 1\r\n\r\n" {
                    if s.write_all(&[*b]).await.is_err() || s.flush().await.is_err() {
                        return;
                    }
                    sleep(Duration::from_secs(1)).await;
                }
            }),
        )
        .expect("authorize", &["timed out"])
        .run();
}

/// A chunked body that never ends, a small chunk every 100 ms (never reaching the size limit).
#[test]
fn a_body_that_never_ends() {
    Case::new("endless-body")
        .raw(
            Side::Front,
            "/oauth/authorize",
            raw(|mut s, _| async move {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n";
                if s.write_all(head).await.is_err() {
                    return;
                }
                loop {
                    if s.write_all(b"10\r\n<p>more more</p>\r\n").await.is_err()
                        || s.flush().await.is_err()
                    {
                        return;
                    }
                    sleep(Duration::from_millis(100)).await;
                }
            }),
        )
        .expect("authorize", &["timed out"])
        .run();
}

/// An endless body sent as fast as the socket takes it: the 16 MiB limit stops it, not the
/// time-out, and nothing near that much is kept.
#[test]
fn a_body_larger_than_the_limit() {
    Case::new("oversized-body")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n";
                if s.write_all(head).await.is_err() {
                    return;
                }
                let block = vec![b' '; 64 * 1024];
                while s.write_all(&block).await.is_ok() {}
            }),
        )
        .expect("token", &["larger than the limit"])
        .run();
}

/// The connection is reset (RST, linger 0) halfway through a body announced by Content-Length.
#[test]
fn a_connection_reset_mid_body() {
    Case::new("reset-mid-body")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"access_token\":\"";
                let _ = s.write_all(head).await;
                let _ = s.write_all(&[b'a'; 4000]).await;
                let _ = s.flush().await;
                sleep(Duration::from_millis(100)).await;
                let (tcp, _) = s.into_inner();
                // Deprecated because a non-zero linger blocks on drop; zero sends RST at once.
                #[allow(deprecated)]
                let _ = tcp.set_linger(Some(Duration::ZERO));
                drop(tcp);
            }),
        )
        .expect("token", &["reset", "error reading a body", "decoding response body"])
        .run();
}

/// A completed handshake, then bytes that are no TLS record at all.
#[test]
fn tls_garbage_after_the_handshake() {
    Case::new("tls-garbage")
        .tcp(
            Side::Front,
            tcp(|stream, config| async move {
                let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await else {
                    return;
                };
                let (mut tcp, _) = tls.into_inner();
                let _ = tcp.write_all(&[0x42; 4096]).await;
                sleep(HANG).await;
            }),
        )
        .expect("authorize", &["corrupt", "invalid", "tls"])
        .run();
}

/// An alert storm: after the ClientHello, ten thousand warning-level alerts and no ServerHello.
#[test]
fn an_alert_storm() {
    Case::new("alert-storm")
        .tcp(
            Side::Front,
            tcp(|mut stream, _| async move {
                let mut hello = [0u8; 4096];
                if stream.read(&mut hello).await.is_err() {
                    return;
                }
                // TLS 1.2 record, type alert (21), level warning (1), user_canceled (90).
                let alert = [21u8, 3, 3, 0, 2, 1, 90];
                let storm: Vec<u8> = alert
                    .iter()
                    .copied()
                    .cycle()
                    .take(alert.len() * 10_000)
                    .collect();
                let _ = stream.write_all(&storm).await;
                sleep(HANG).await;
            }),
        )
        .expect("authorize", &["alert", "tls", "handshake"])
        .run();
}

/// A server that accepts the TCP connection and then says nothing, not even a ServerHello.
#[test]
fn a_server_that_accepts_tcp_and_says_nothing() {
    Case::new("silent-server")
        .tcp(
            Side::Front,
            tcp(|stream, _| async move {
                sleep(HANG).await;
                drop(stream);
            }),
        )
        .expect("authorize", &["timed out"])
        .run();
}

/// A 100-continue flood: interim `100 Continue` responses to the token request, forever.
#[test]
fn a_100_continue_flood() {
    Case::new("continue-flood")
        .raw(
            Side::Back,
            "/oauth/token",
            raw(|mut s, _| async move {
                loop {
                    if s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
                        || s.flush().await.is_err()
                    {
                        return;
                    }
                    sleep(Duration::from_millis(1)).await;
                }
            }),
        )
        .expect("token", &["timed out", "100", "informational", "continue"])
        .run();
}
