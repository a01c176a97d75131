//! The step results: what the mock PGO saw when it performed a scenario's steps, as plain
//! data. This is the vocabulary between the party that acts and the judge: the mock PGO
//! produces these values, the [`checks`](crate::checks) read them, and neither needs the
//! other's code.
//!
//! **Boundary:** nothing here performs I/O or knows how a step was carried out.

use serde_json::Value;

/// What a step produced, for the checks to judge.
#[derive(Debug, Clone)]
pub enum StepResult {
    Authorize(AuthorizeResult),
    Http(HttpResult),
    /// The step could not run (an earlier step gave no code or token to use).
    NotRun {
        reason: String,
    },
    /// A wait step waited this long: for real, or (`advanced`) by advancing the simulated
    /// parties' clock.
    Waited {
        seconds: u64,
        advanced: bool,
    },
    /// The step cannot be exercised against this target (e.g. no second PGO identity for an
    /// external DVA); its checks are skipped, not failed.
    Skipped {
        reason: String,
    },
    /// A TLS scan of one endpoint.
    Tls(Box<TlsResult>),
}

/// What the hello-level probes and one recording handshake found at one endpoint.
#[derive(Debug, Clone)]
pub struct TlsResult {
    /// `authorization`, `token` or `resource`.
    pub endpoint: String,
    /// Whether the endpoint is on the back channel (private G1, mutual TLS).
    pub back_channel: bool,
    pub host: String,
    pub scan: crate::tls_scan::TlsScan,
    /// The certificate chain the server presented (DER, leaf first); empty when none came.
    pub chain: Vec<Vec<u8>>,
    /// Why no chain was recorded, if none was.
    pub chain_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthorizeResult {
    /// The state the PGO sent, if it sent one.
    pub sent_state: Option<String>,
    pub outcome: AuthorizeOutcome,
    /// Every hop, in order.
    pub evidence: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum AuthorizeOutcome {
    /// The browser was sent back to the redirect URI with these query parameters.
    RedirectedBack {
        params: Vec<(String, String)>,
        seq: usize,
    },
    /// The browser stopped on a page it had no reason to leave (an error page, normally).
    Page {
        status: u16,
        title: Option<String>,
        seq: usize,
    },
    /// The exchange broke off: a transport failure, a host not on the Whitelist, a loop.
    Broken { reason: String, seq: Option<usize> },
}

impl AuthorizeResult {
    pub fn param(&self, name: &str) -> Option<&str> {
        match &self.outcome {
            AuthorizeOutcome::RedirectedBack { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpResult {
    pub seq: Option<usize>,
    pub outcome: HttpOutcome,
    pub elapsed_ms: u64,
    /// FHIR searches: the further pages fetched through `next` links, in order (each with no
    /// pages of its own). The first page is this result itself.
    pub pages: Vec<HttpResult>,
    /// Why following `next` links stopped early (a foreign host, a loop, too many pages).
    pub paging_stopped: Option<String>,
    /// What else happened while paging (the access token expired and was refreshed).
    pub paging_notes: Vec<String>,
    /// The body parsed as JSON, once: several checks read the same large searchset.
    pub(crate) parsed: std::sync::OnceLock<Option<Value>>,
}

#[derive(Debug, Clone)]
pub enum HttpOutcome {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Transport {
        reason: String,
    },
}

impl HttpResult {
    pub fn json(&self) -> Option<Value> {
        self.json_ref().cloned()
    }

    /// The body as JSON, parsed on first use.
    pub fn json_ref(&self) -> Option<&Value> {
        self.parsed
            .get_or_init(|| match &self.outcome {
                HttpOutcome::Response { body, .. } => serde_json::from_str(body).ok(),
                HttpOutcome::Transport { .. } => None,
            })
            .as_ref()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match &self.outcome {
            HttpOutcome::Response { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            HttpOutcome::Transport { .. } => None,
        }
    }

    /// A result with no response, only `reason`. Also the starting point for a result made
    /// outside the crate (the fuzz targets): set `outcome` and `pages` on it.
    pub fn broken(reason: String) -> HttpResult {
        HttpResult {
            seq: None,
            outcome: HttpOutcome::Transport { reason },
            elapsed_ms: 0,
            pages: Vec::new(),
            paging_stopped: None,
            paging_notes: Vec::new(),
            parsed: std::sync::OnceLock::new(),
        }
    }

    /// This result and its further pages.
    pub fn all_pages(&self) -> impl Iterator<Item = &HttpResult> {
        std::iter::once(self).chain(&self.pages)
    }

    /// The exchange sequence numbers of every page.
    pub fn seqs(&self) -> Vec<usize> {
        self.all_pages().filter_map(|p| p.seq).collect()
    }

    /// The `next` link of a searchset page.
    pub fn next_link(&self) -> Option<String> {
        self.json_ref()?["link"]
            .as_array()?
            .iter()
            .find(|l| l["relation"] == "next")?["url"]
            .as_str()
            .map(str::to_string)
    }
}
