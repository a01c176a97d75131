//! The simulated DVA: a MedMij authorization server, SAML service provider and FHIR resource
//! server for gegevensdienst 49, conformant unless its [`quirks`] say otherwise.
//!
//! Two TLS listeners, as a real DVA has: the **front channel** (authorization endpoint, landing
//! and consent pages, SAML assertion consumer, metadata; public-OV-like certificate, no client
//! certificate) and the **back channel** (token and resource endpoints; private-G1-like
//! certificate, mutual TLS: a client certificate offered is verified in the handshake, and each
//! endpoint requires one, the token endpoint with `invalid_client`, the resource endpoint with
//! 401, which also binds it to the token's client). rustls serves both, except for the quirks
//! that claim legacy TLS, which OpenSSL serves (`crate::legacy_tls`).
//!
//! It records its refusals in the scenario's exchange log (the mock TVS records the SOAP call); it
//! never judges anything about the PGO beyond what MedMij says a DVA must enforce.

pub mod fhir;
pub mod oauth;
pub mod quirks;
pub mod stimulus;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::exchange::{ExchangeLog, Party, RawExchange};
use crate::fixtures::PatientStore;
use crate::lists::Ocl;
use crate::pki::{Broken, Channel, Pki, PkiError, SamlKey};
use crate::saml::{EntityMetadata, Loa};
use crate::tls::{self, ClientAuth, HostMap, Server, TlsError};
pub use quirks::{Quirk, Quirks};
pub use stimulus::{Staged, Stimulus};

#[derive(Debug, thiserror::Error)]
pub enum DvaError {
    #[error("set up the simulated DVA's keys: {0}")]
    Pki(#[from] PkiError),
    #[error("set up the simulated DVA's TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("set up the simulated DVA's legacy TLS (OpenSSL): {0}")]
    Legacy(#[from] crate::legacy_tls::LegacyError),
}

/// How long things live at the simulated DVA. Configurable so tests need not wait.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub code: Duration,
    pub access_token: Duration,
    pub refresh_token: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            code: Duration::from_secs(60),
            access_token: Duration::from_secs(900),
            // Long-term consent: half a year.
            refresh_token: Duration::from_secs(182 * 24 * 3600),
        }
    }
}

/// Everything that makes one simulated DVA (one matrix row) what it is.
#[derive(Debug, Clone)]
pub struct DvaConfig {
    pub id: String,
    /// The zorgaanbieder, `…@medmij`.
    pub practice: String,
    pub front_host: String,
    pub back_host: String,
    /// The DV's eID entityID (test index 9000–9999).
    pub entity_id: String,
    pub service_uuid: String,
    /// Gegevensdiensten offered, e.g. `["49"]`.
    pub services: Vec<String>,
    pub quirks: Quirks,
    pub lifetimes: Lifetimes,
    pub min_loa: Loa,
    /// The day the practice started online access: E/P lines before it are not shared.
    pub online_access_start: time::Date,
    pub ocl: Arc<Ocl>,
    pub patients: Arc<PatientStore>,
    /// Searches with more matches than this answer in pages linked by `next`.
    pub page_size: usize,
    /// The row's answer counts for the availability quirks.
    pub availability: Arc<quirks::Availability>,
    /// How late `token-slow-1-in-50`'s slow answers come.
    pub slow_answer: std::time::Duration,
    /// What this DVA does on purpose to a PGO under test (the PGO suite); `None` otherwise.
    pub stimulus: Option<Arc<Staged>>,
    /// Set for the PGO suite: every request is recorded in the log, and counted here.
    pub activity: Option<Arc<Activity>>,
    /// The back channel's public port where the ZAL names one (the PGO suite's), for the links
    /// the DVA writes (a search's `next`); `None`: the links name no port.
    pub back_port: Option<u16>,
    /// The time of codes, tokens and SAML checks: shared with the scenario's mock TVS and
    /// advanced by `wait` steps instead of sleeping ([`crate::clock`]).
    pub clock: crate::clock::Clock,
}

/// What a PGO suite's DVA has seen so far: whether the PGO came, and whether it is still busy.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    requests: std::sync::atomic::AtomicUsize,
    /// The practice's event counter: each request's arrival and answer (`exchange::Ticks`).
    ticks: std::sync::atomic::AtomicU64,
    last: Mutex<Option<std::time::Instant>>,
}

impl Activity {
    /// Requests (and refused handshakes) seen.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether a request is being answered now.
    pub fn busy(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// How long since the last request ended (`None` before the first).
    pub fn idle(&self) -> Option<Duration> {
        Dva::lock(&self.last).map(|t| t.elapsed())
    }

    /// A request arrived; returns its arrival tick.
    /// A request arrived: returns its number at this practice (from 0) and its arrival tick.
    fn begin(&self) -> (usize, u64) {
        let number = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (number, self.tick())
    }

    fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    fn end(&self) {
        *Dva::lock(&self.last) = Some(std::time::Instant::now());
        self.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A handshake the DVA's listener refused (or the PGO aborted) counts as a visit.
    /// Returns whether the visit may still be recorded (see [`Activity::admit`]) and its tick.
    pub fn touched(&self) -> (bool, u64) {
        let (number, tick) = self.begin();
        self.end();
        (number < crate::limits::MAX_PGO_RECORDS, tick)
    }

    /// Whether the request numbered `number` is recorded: the first
    /// [`crate::limits::MAX_PGO_RECORDS`] are; the rest are counted only, and the first of
    /// those leaves a note saying so (`Some(note)`).
    fn admit(number: usize) -> (bool, Option<String>) {
        let cap = crate::limits::MAX_PGO_RECORDS;
        (
            number < cap,
            (number == cap).then(|| {
                format!(
                    "more than {cap} requests at this practice: the rest are counted, not recorded"
                )
            }),
        )
    }
}

/// The names of the SAML keys of the simulated DVA of row `row_id`: signing, then encryption.
pub fn saml_key_names(row_id: &str) -> [String; 2] {
    [
        format!("dva-{row_id}-signing"),
        format!("dva-{row_id}-encryption"),
    ]
}

impl DvaConfig {
    pub fn acs_url(&self) -> String {
        format!("https://{}/saml/acs", self.front_host)
    }

    fn signing_key_name(&self) -> String {
        let [signing, _] = saml_key_names(&self.id);
        signing
    }

    fn encryption_key_name(&self) -> String {
        let [_, encryption] = saml_key_names(&self.id);
        encryption
    }

    /// The provider name without `@medmij`, as 2.2.x scopes use it.
    pub fn practice_local(&self) -> &str {
        self.practice.trim_end_matches("@medmij")
    }

    /// The SP metadata this DV registers at the TVS.
    pub fn metadata(&self, pki: &Pki) -> Result<String, DvaError> {
        Ok(crate::saml::sp_metadata(
            &self.entity_id,
            &*pki.saml_key(&self.signing_key_name())?,
            &*pki.saml_key(&self.encryption_key_name())?,
            &self.acs_url(),
        ))
    }
}

/// An authorization in progress, keyed by the browser's session cookie.
#[derive(Debug, Clone)]
struct AuthSession {
    client_id: String,
    organisation: String,
    redirect_uri: String,
    state: Option<String>,
    services: Vec<String>,
    authn_request_id: Option<String>,
    bsn: Option<String>,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    bsn: String,
    services: Vec<String>,
    issued: Instant,
    used: bool,
    /// Tokens bought with this code, revoked if the code is replayed.
    issued_tokens: Vec<String>,
}

#[derive(Debug, Clone)]
struct TokenGrant {
    client_id: String,
    bsn: String,
    services: Vec<String>,
    expires: Instant,
}

/// The running DVA's shared state.
pub struct Dva {
    cfg: DvaConfig,
    tvs: EntityMetadata,
    signing: Arc<SamlKey>,
    encryption: Arc<SamlKey>,
    soap: reqwest::Client,
    metadata_xml: String,
    log: ExchangeLog,
    sessions: Mutex<HashMap<String, AuthSession>>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    access: Mutex<HashMap<String, TokenGrant>>,
    refresh: Mutex<HashMap<String, TokenGrant>>,
    /// Search results by person, type and query (without `_page`), as positions in the
    /// record: each page of a large result is cut from the same list.
    searches: Mutex<HashMap<String, Arc<Vec<usize>>>>,
    /// [`Quirk::AuthnRequestCached`]: the first login's AuthnRequest ID and posted form value,
    /// posted again for every later login.
    cached_authn_request: Mutex<Option<(String, String)>>,
    /// Logins by artifact, kept only under [`quirks::Quirk::ArtifactReplayAccepted`].
    resolved: Mutex<HashMap<String, crate::saml::Login>>,
}

impl Dva {
    fn note(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(dva = %self.cfg.id, "{}", self.log.redact(&text));
        self.log
            .record(RawExchange::note(Party::Dva, Party::Pgo, text));
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stimulus(&self) -> Option<&Staged> {
        self.cfg.stimulus.as_deref()
    }

    fn stimulated(&self, s: Stimulus) -> bool {
        self.stimulus().is_some_and(|st| st.stimulus == s)
    }
}

/// The two running listeners; dropping this stops the DVA.
#[derive(Debug)]
pub struct DvaServers {
    pub front: Server,
    pub back: Server,
}

/// Starts the DVA on the given listeners. `hosts` lets its SOAP client reach the TVS.
pub fn start(
    cfg: DvaConfig,
    pki: &Pki,
    tvs: EntityMetadata,
    front: TcpListener,
    back: TcpListener,
    hosts: &HostMap,
    log: ExchangeLog,
) -> Result<DvaServers, DvaError> {
    let back_leaf = pki.leaf(Channel::Back, &cfg.back_host)?;
    let quirks = &cfg.quirks;
    // The certificates the listeners present: conformant, unless a quirk says otherwise.
    let stimulus = cfg.stimulus.as_ref().map(|s| s.stimulus);
    let back_served = if stimulus == Some(Stimulus::UntrustedCertificate) {
        pki.broken(Channel::Back, &cfg.back_host, Broken::UnknownCa)?
    } else if stimulus == Some(Stimulus::WrongHostCertificate) {
        pki.broken(Channel::Back, &cfg.back_host, Broken::OtherHost)?
    } else if quirks.has(Quirk::PublicCertificateOnBackChannel) {
        pki.broken(Channel::Back, &cfg.back_host, Broken::OtherChannelCa)?
    } else if quirks.has(Quirk::CertificateExpiringSoon) {
        pki.broken(
            Channel::Back,
            &cfg.back_host,
            Broken::ExpiresIn(EXPIRING_SOON_DAYS),
        )?
    } else {
        back_leaf.clone()
    };
    let front_leaf = if quirks.has(Quirk::WildcardFrontCertificate) {
        pki.broken(Channel::Front, &cfg.front_host, Broken::Wildcard)?
    } else if quirks.has(Quirk::CertificateExpiringSoon) {
        pki.broken(
            Channel::Front,
            &cfg.front_host,
            Broken::ExpiresIn(EXPIRING_SOON_DAYS),
        )?
    } else {
        pki.leaf(Channel::Front, &cfg.front_host)?
    };
    let versions = if quirks.has(Quirk::Tls13Only) {
        tls::Versions::Tls13Only
    } else {
        tls::Versions::Default
    };
    // The client certificate of the artifact resolution: the registered one, unless a quirk
    // presents a sibling host's (valid, from the same CA).
    let soap_identity = if quirks.has(Quirk::ArtifactResolveOtherCertificate) {
        pki.broken(Channel::Back, &cfg.back_host, Broken::OtherHost)?
    } else {
        back_leaf.clone()
    };
    let soap = tls::http_client(
        tls::client_config(&pki.roots(Channel::Back), Some(&soap_identity))?,
        hosts,
        tls::ClientOptions {
            timeout: Duration::from_secs(10),
            cookies: None,
        },
    )?;
    let dva = Arc::new(Dva {
        signing: pki.saml_key(&cfg.signing_key_name())?,
        encryption: pki.saml_key(&cfg.encryption_key_name())?,
        metadata_xml: cfg.metadata(pki)?,
        cfg,
        tvs,
        soap,
        log: log.clone(),
        sessions: Mutex::default(),
        codes: Mutex::default(),
        access: Mutex::default(),
        refresh: Mutex::default(),
        searches: Mutex::default(),
        cached_authn_request: Mutex::default(),
        resolved: Mutex::default(),
    });
    let refusal_log = log.clone();
    let refusal_activity = dva.cfg.activity.clone();
    let on_refused: tls::RefusalHook = Arc::new(move |why| {
        // A PGO retrying a refused back channel in a loop must not grow the log without end.
        if refusal_activity.as_ref().is_none_or(|a| a.touched().0) {
            refusal_log.record(RawExchange::note(
                Party::Dva,
                Party::Pgo,
                format!("back channel: {why}"),
            ));
        }
    });
    // The certificate is verified in the handshake when offered; whether one is required is
    // decided per endpoint (token: invalid_client; resource: 401). The quirks that claim legacy
    // TLS really speak it, through OpenSSL, on each listener's own port.
    let (front, back) = match legacy_profile(&dva.cfg.quirks) {
        Some(profile) => {
            let front_tls = crate::legacy_tls::server(&front_leaf, ClientAuth::None, &profile)?;
            let back_tls = crate::legacy_tls::server(
                &back_served,
                client_auth_of(&dva.cfg.quirks, pki),
                &profile,
            )?;
            (
                crate::legacy_tls::serve(front, front_tls, front_router(dva.clone()), None),
                crate::legacy_tls::serve(back, back_tls, back_router(dva), Some(on_refused)),
            )
        }
        None => {
            let front_tls = tls::server_config_with(&front_leaf, ClientAuth::None, versions)?;
            let back_tls = tls::server_config_with(
                &back_served,
                client_auth_of(&dva.cfg.quirks, pki),
                versions,
            )?;
            (
                tls::serve(front, front_tls, front_router(dva.clone()), None),
                tls::serve(back, back_tls, back_router(dva), Some(on_refused)),
            )
        }
    };
    Ok(DvaServers { front, back })
}

/// How soon the certificates of [`Quirk::CertificateExpiringSoon`] expire: below the default
/// warning threshold of 60 days.
const EXPIRING_SOON_DAYS: u32 = 20;

/// The client-certificate verification of the back channel.
fn client_auth_of(quirks: &Quirks, pki: &Pki) -> ClientAuth {
    if quirks.has(Quirk::ClientCertificateAnyCa) {
        ClientAuth::AnyCa
    } else {
        ClientAuth::Optional(pki.roots(Channel::Back))
    }
}

/// What the OpenSSL listener of a legacy-TLS quirk negotiates (`None`: rustls serves).
fn legacy_profile(quirks: &Quirks) -> Option<crate::legacy_tls::LegacyProfile> {
    use crate::legacy_tls::{LegacyProfile, LegacyVersion};
    const GOOD: &str =
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
    if quirks.has(Quirk::LegacyTlsAccepted) {
        // An old stack: TLS 1.0 to 1.2, no 1.3, the CBC suites TLS 1.0 needs.
        Some(LegacyProfile {
            min_version: LegacyVersion::Tls10,
            max_version: LegacyVersion::Tls12,
            cipher_list: format!("{GOOD}:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0"),
        })
    } else if quirks.has(Quirk::WeakSuiteAccepted) {
        // Modern versions, but static RSA with CBC-SHA still on offer. (3DES is not: the
        // system's OpenSSL 3 does not negotiate it, so the quirk would claim what it cannot do.)
        Some(LegacyProfile {
            min_version: LegacyVersion::Tls12,
            max_version: LegacyVersion::Tls13,
            cipher_list: format!("{GOOD}:AES128-SHA:@SECLEVEL=0"),
        })
    } else {
        None
    }
}

fn front_router(dva: Arc<Dva>) -> Router {
    let recorder = Recorder::of(&dva, Party::Browser, &dva.cfg.front_host);
    let router = Router::new()
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/login", post(oauth::login))
        .route("/saml/acs", get(oauth::assertion_consumer))
        .route("/oauth/consent", post(oauth::consent))
        .route("/saml/metadata", get(oauth::metadata))
        .with_state(dva);
    recorded(router, recorder)
}

/// For the PGO suite: who a listener's requests come from, where they are logged and counted.
#[derive(Clone)]
struct Recorder {
    log: ExchangeLog,
    from: Party,
    host: String,
    activity: Arc<Activity>,
}

impl Recorder {
    fn of(dva: &Dva, from: Party, host: &str) -> Option<Recorder> {
        Some(Recorder {
            log: dva.log.clone(),
            from,
            host: host.to_string(),
            activity: dva.cfg.activity.clone()?,
        })
    }
}

/// `router`, recording every request and answer when a recorder is given.
fn recorded(router: Router, recorder: Option<Recorder>) -> Router {
    match recorder {
        Some(r) => router.layer(axum::middleware::from_fn_with_state(r, record)),
        None => router,
    }
}

/// Records one request and its answer as the DVA saw them: what the PGO suite's checks judge.
/// Bodies are read up to the body limit (a larger request is refused with 413).
async fn record(
    axum::extract::State(r): axum::extract::State<Recorder>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (number, received) = r.activity.begin();
    let (parts, body) = req.into_parts();
    let url = format!(
        "https://{}{}",
        r.host,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut x = RawExchange::request(r.from, Party::Dva, parts.method.as_str(), &url);
    x.request_headers = header_pairs(&parts.headers);
    x.client_certificate = parts
        .extensions
        .get::<tls::PeerCertificates>()
        .and_then(tls::PeerCertificates::presented);
    // From here on a PGO that closes the connection (mid-upload, or before the answer) cancels
    // this future: the guard still records the request, with that fact, and ends it.
    let mut pending = Pending {
        x: Some(x),
        number,
        received,
        recorder: r.clone(),
    };
    let limit = crate::limits::MAX_PGO_REQUEST_BODY;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            // Too large: answered 413. Anything else is the PGO going away mid-upload, which
            // the guard records as an abandoned request when this future ends.
            let too_large = e.to_string().contains("length limit");
            if too_large && let Some(mut x) = pending.x.take() {
                x.transport_error = Some(format!("request body unreadable: {e}"));
                x.status = Some(413);
                r.finish(x, number, received);
            }
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    if let Some(x) = pending.x.as_mut()
        && !bytes.is_empty()
    {
        x.request_body = Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    let (parts, body) = response.into_parts();
    // The DVA's own answer: a page of a search, bounded by the page size.
    let bytes = axum::body::to_bytes(body, crate::limits::MAX_PGO_REQUEST_BODY * 64)
        .await
        .unwrap_or_default();
    if let Some(mut x) = pending.x.take() {
        x.status = Some(parts.status.as_u16());
        x.response_headers = header_pairs(&parts.headers);
        if !bytes.is_empty() {
            x.response_body = Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        r.finish(x, number, received);
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

impl Recorder {
    /// Records `x`, the practice's request number `number` (unless past the record limit), and
    /// ends its request.
    fn finish(&self, mut x: RawExchange, number: usize, received: u64) {
        let answered = self.activity.tick();
        x.ticks = Some(crate::exchange::Ticks { received, answered });
        let (recorded, note) = Activity::admit(number);
        if recorded {
            self.log.record(x);
        }
        if let Some(note) = note {
            self.log
                .record(RawExchange::note(Party::Dva, self.from, note));
        }
        self.activity.end();
    }
}

/// What the PGO suite says of a request whose connection the PGO closed before the answer.
pub const CLOSED_BEFORE_ANSWER: &str = "the client closed the connection before the answer";

/// A request being answered; dropped unanswered, it is recorded as abandoned.
struct Pending {
    x: Option<RawExchange>,
    number: usize,
    received: u64,
    recorder: Recorder,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut x) = self.x.take() {
            x.transport_error = Some(CLOSED_BEFORE_ANSWER.to_string());
            self.recorder.finish(x, self.number, self.received);
        }
    }
}

fn header_pairs(h: &axum::http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn back_router(dva: Arc<Dva>) -> Router {
    // The quirk serves the FHIR API one `/fhir` deeper than the ZAL publishes, matching PGOs
    // that double the base (brief §10.11), so a conformant PGO finds nothing.
    let fhir_path = if dva.cfg.quirks.has(Quirk::FhirBaseDoubled) {
        "/fhir/fhir/{resource_type}"
    } else {
        "/fhir/{resource_type}"
    };
    let recorder = Recorder::of(&dva, Party::Pgo, &dva.cfg.back_host);
    let router = Router::new()
        .route("/oauth/token", post(oauth::token))
        .route(fhir_path, get(fhir::search))
        .with_state(dva);
    recorded(router, recorder)
}
