//! Placeholder for the hello-level prober (being written on its own branch).

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls_scan::TlsScan;

pub struct ProbeTarget {
    pub host: String,
    pub addr: SocketAddr,
}

pub struct ProbeOptions {
    pub timeout: Duration,
    pub max_connections: usize,
    pub max_reply_bytes: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(5),
            max_connections: 16,
            max_reply_bytes: 64 * 1024,
        }
    }
}

pub async fn scan(target: &ProbeTarget, _opts: &ProbeOptions) -> TlsScan {
    TlsScan {
        host: target.host.clone(),
        addr: target.addr.to_string(),
        versions: vec![],
        suites: vec![],
        groups: vec![],
        compression_chosen: None,
        secure_renegotiation: None,
        extended_master_secret: None,
        negotiated_when_all_offered: None,
        downgrade_sentinel: None,
        fallback_scsv_refused: None,
        errors: vec![],
        duration_ms: 0,
    }
}
