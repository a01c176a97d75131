//! What the hello-level TLS probes found, as plain data (placeholder until the prober lands).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "SSLv3")]
    Ssl3,
    #[serde(rename = "TLSv1.0")]
    Tls10,
    #[serde(rename = "TLSv1.1")]
    Tls11,
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Ssl3 => "SSLv3",
            TlsVersion::Tls10 => "TLSv1.0",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    Accepted,
    Refused { alert: Option<u8>, reason: String },
    Error { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionProbe {
    pub version: TlsVersion,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteProbe {
    pub id: u16,
    pub name: String,
    pub version: TlsVersion,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupProbe {
    pub id: u16,
    pub name: String,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsScan {
    pub host: String,
    pub addr: String,
    pub versions: Vec<VersionProbe>,
    pub suites: Vec<SuiteProbe>,
    pub groups: Vec<GroupProbe>,
    pub compression_chosen: Option<bool>,
    pub secure_renegotiation: Option<bool>,
    pub extended_master_secret: Option<bool>,
    pub negotiated_when_all_offered: Option<TlsVersion>,
    pub downgrade_sentinel: Option<bool>,
    pub fallback_scsv_refused: Option<bool>,
    pub errors: Vec<String>,
    pub duration_ms: u64,
}
