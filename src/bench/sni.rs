//! One front-channel port for the whole PGO suite: a TCP-level router that reads the server
//! name (SNI) from each connection's TLS ClientHello and passes the connection, untouched, to
//! the listener of that host (a practice's DVA front channel, or the mock TVS's login page).
//! TLS still ends at each party, with its own certificate.
//!
//! The ZAL's front-channel URIs may not carry a port, so a real PGO's browser goes to port 443:
//! with one port for every front host, one forward (or `front_port = 443`) serves the suite.
//! Only the first TLS record is read: a ClientHello larger than one record (16 KiB; rustls's
//! with a post-quantum key share is under 2 KiB) is not routed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::probe::Cursor;

/// The most bytes read while looking for the server name: one TLS record.
const MAX_HELLO: usize = crate::limits::MAX_TLS_FRAGMENT + 5;

/// Runs the router on `listener` until aborted: each connection goes to `routes[sni]`;
/// one without a known server name is closed.
pub fn route(
    listener: TcpListener,
    routes: BTreeMap<String, SocketAddr>,
) -> tokio::task::JoinHandle<()> {
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        // The connections are this task's: aborting the router ends them too.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let routes = routes.clone();
            connections.spawn(async move {
                let _ = pass_on(stream, &routes).await;
            });
        }
    })
}

async fn pass_on(
    mut client: TcpStream,
    routes: &BTreeMap<String, SocketAddr>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut hello = Vec::with_capacity(1024);
    let name = tokio::time::timeout(
        Duration::from_secs(crate::limits::HANDSHAKE_TIMEOUT_S),
        read_server_name(&mut client, &mut hello),
    )
    .await
    .ok()
    .flatten();
    let Some(target) = name.and_then(|n| routes.get(&n.to_ascii_lowercase())) else {
        return Ok(());
    };
    let mut upstream = TcpStream::connect(target).await?;
    upstream.set_nodelay(true)?;
    tokio::io::AsyncWriteExt::write_all(&mut upstream, &hello).await?;
    // A routed connection lives at most this long (a browser keeps one open for a while; a
    // finished suite must not wait on it).
    let _ = tokio::time::timeout(
        Duration::from_secs(crate::limits::ROUTED_CONNECTION_S),
        tokio::io::copy_bidirectional(&mut client, &mut upstream),
    )
    .await;
    Ok(())
}

/// Reads the first TLS record into `buf` and returns the ClientHello's server name.
async fn read_server_name(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        // Not a TLS handshake record: nothing to route (plain HTTP to this port, say).
        if buf.first().is_some_and(|b| *b != 0x16) {
            return None;
        }
        if let Some(need) = record_len(buf) {
            if buf.len() >= need {
                return server_name(&buf[5..need]);
            }
        }
        if buf.len() >= MAX_HELLO {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The length of the first TLS record with its header, once the header is there.
fn record_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 5 {
        return None;
    }
    Some(5 + usize::from(u16::from_be_bytes([buf[3], buf[4]])))
}

/// The host name in a ClientHello handshake message (`None` when it has none, or is not one).
pub fn server_name(handshake: &[u8]) -> Option<String> {
    let mut r = Cursor(handshake);
    if r.u8()? != 1 {
        return None;
    }
    let _length = r.take(3)?;
    let _version = r.take(2)?;
    let _random = r.take(32)?;
    let session = usize::from(r.u8()?);
    r.take(session)?;
    let suites = usize::from(r.u16()?);
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let len = usize::from(r.u16()?);
    let mut extensions = Cursor(r.take(len)?);
    while let (Some(kind), Some(len)) = (extensions.u16(), extensions.u16()) {
        let data = extensions.take(usize::from(len))?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor(data);
        let len = usize::from(list.u16()?);
        let mut names = Cursor(list.take(len)?);
        while let Some(name_type) = names.u8() {
            let len = usize::from(names.u16()?);
            let name = names.take(len)?;
            if name_type == 0 {
                return String::from_utf8(name.to_vec()).ok();
            }
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello as rustls sends it, for `host`.
    fn hello(host: &str) -> Vec<u8> {
        let mut ext = Vec::new();
        let name = host.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        // An extension before it (supported_versions), as real hellos have.
        ext.extend_from_slice(&[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
        ext.extend_from_slice(&[0x00, 0x00]);
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni);
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01]);
        body.extend_from_slice(&[0x01, 0x00]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_server_name_is_read_from_a_client_hello() {
        assert_eq!(
            server_name(&hello("a.pgo-suite.koppeltest.test")).as_deref(),
            Some("a.pgo-suite.koppeltest.test")
        );
    }

    #[test]
    fn a_cut_or_foreign_message_has_no_name_and_no_panic() {
        let h = hello("x.test");
        for n in 0..h.len() {
            assert_eq!(server_name(&h[..n]), None, "cut at {n}");
        }
        assert_eq!(server_name(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(server_name(&[]), None);
    }

    #[tokio::test]
    async fn a_real_tls_client_is_passed_to_the_listener_of_its_server_name() {
        crate::tls::install_crypto_provider();
        let pki = crate::pki::Pki::generate().unwrap();
        let host = "front.pgo-suite.koppeltest.test";
        let leaf = pki.leaf(crate::pki::Channel::Front, host).unwrap();
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inner_addr = inner.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let _server = crate::tls::serve(
            inner,
            crate::tls::server_config(&leaf, crate::tls::ClientAuth::None).unwrap(),
            router,
            None,
        );
        let outer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outer_addr = outer.local_addr().unwrap();
        let task = route(outer, [(host.to_string(), inner_addr)].into());
        let hosts: crate::tls::HostMap = [(host.to_string(), outer_addr)].into_iter().collect();
        let client = crate::tls::http_client(
            crate::tls::client_config(&pki.roots(crate::pki::Channel::Front), None).unwrap(),
            &hosts,
            crate::tls::ClientOptions::default(),
        )
        .unwrap();
        let body = client
            .get(format!("https://{host}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "hello");
        // Another name is not routed: the connection closes.
        let other = "other.pgo-suite.koppeltest.test";
        let hosts: crate::tls::HostMap = [(other.to_string(), outer_addr)].into_iter().collect();
        let client = crate::tls::http_client(
            crate::tls::client_config(&pki.roots(crate::pki::Channel::Front), None).unwrap(),
            &hosts,
            crate::tls::ClientOptions::default(),
        )
        .unwrap();
        assert!(
            client
                .get(format!("https://{other}/"))
                .send()
                .await
                .is_err()
        );
        task.abort();
    }
}
