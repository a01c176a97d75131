//! The mock TVS: a SAML 2.0 identity provider shaped like the Dutch TVS (eID SAML 4.4).
//!
//! - `GET /metadata`: IdP metadata (signing certificate, SSO and artifact resolution endpoints).
//! - `POST /sso`: receives the DV's AuthnRequest (HTTP-POST binding), verifies its signature
//!   against the DV's registered metadata, and shows a test login page with the configured
//!   person prefilled. The mock PGO's browser submits it, choosing the person, the level of
//!   assurance and any [`TvsFault`] a scenario asks for; `action=cancel` cancels.
//! - `POST /login`: issues a single-use artifact (15 minutes) and redirects to the DV's ACS.
//! - `POST /ars` (back channel, mutual TLS): ArtifactResolve in, signed ArtifactResponse out,
//!   with one signed Assertion carrying the BSN as an `EncryptedID` for the DV.
//! - `GET /entity/{tag}` (plain HTTP, its own port on the back channel's address): the target
//!   of the XXE fault; every fetch is recorded in the scenario's log.
//!
//! The mock TVS is a witness: it records every artifact resolution it answers (request,
//! status, response) in the exchange log of the scenario whose login issued the artifact, so
//! the checks can prove from the log that a DVA, simulated or real, actually fetched the
//! (faulty) login before it refused. A shared TVS (external rows) finds that log through the
//! login form's `witness` field, which the runner registers in [`Witnesses`].
//!
//! Faults are data: each is one variant of [`TvsFault`] applied in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::exchange::{ExchangeLog, Party, RawExchange};
use crate::pki::{Channel, Pki, PkiError, SamlKey};
use crate::saml::{self, AssertionSpec, AuthnRequest, EntityMetadata, Loa, LoginStatus, escape};
use crate::tls::{self, ClientAuth, Server, TlsError};

/// The TVS's test entityID (RD role, test index 9000).
pub const TVS_ENTITY_ID: &str = "urn:nl-eid-gdi:1.0:RD:00000009999999999000:entities:9000";

/// The name of the mock TVS's SAML signing key ([`Pki::saml_key`]); it also has an impostor.
pub const SIGNING_KEY: &str = "tvs-signing";

/// A deliberate fault in what the mock TVS sends: built by [`saml::forge`].
pub use crate::saml::forge::Fault as TvsFault;

#[derive(Debug, thiserror::Error)]
pub enum TvsError {
    #[error("set up the mock TVS's keys: {0}")]
    Pki(#[from] PkiError),
    #[error("set up the mock TVS's TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("bind the mock TVS's external-entity listener: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct TvsConfig {
    /// The login page's public `host[:port]`.
    pub front_host: String,
    /// The artifact resolution service's public `host[:port]`.
    pub back_host: String,
    /// The person logged in unless the login form says otherwise.
    pub bsn: String,
    pub loa: Loa,
    pub service_uuid: String,
    pub artifact_lifetime: Duration,
    /// Registered DVs' SP metadata.
    pub service_providers: Vec<EntityMetadata>,
    /// CAs the DVs' back-channel client certificates chain to (artifact resolution is mTLS).
    pub client_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The time of its assertions and artifacts: a scenario's simulated DVA shares it.
    pub clock: crate::clock::Clock,
}

impl TvsConfig {
    pub fn sso_url(&self) -> String {
        format!("https://{}/sso", self.front_host)
    }

    pub fn ars_url(&self) -> String {
        format!("https://{}/ars", self.back_host)
    }

    pub fn metadata(&self, pki: &Pki) -> Result<String, TvsError> {
        Ok(saml::idp_metadata(
            TVS_ENTITY_ID,
            &*pki.saml_key(SIGNING_KEY)?,
            &self.sso_url(),
            &self.ars_url(),
        ))
    }
}

struct Pending {
    request: AuthnRequest,
    sp: EntityMetadata,
    relay_state: String,
}

struct Issued {
    spec: AssertionSpec,
    fault: Option<TvsFault>,
    created: Instant,
    used: bool,
    /// The witness tag of the scenario whose login issued it; its log is looked up when the
    /// artifact is resolved, so a finished scenario's log is not kept alive here.
    witness: Option<String>,
}

/// Exchange logs by witness tag: a shared mock TVS records each login's artifact resolution
/// in the log of the scenario that registered the tag its browser submits.
#[derive(Debug, Clone, Default)]
pub struct Witnesses {
    logs: Arc<Mutex<HashMap<String, ExchangeLog>>>,
}

impl Witnesses {
    /// Registers `log` under a fresh tag; the guard removes it again when dropped.
    pub fn register(&self, log: ExchangeLog) -> WitnessTag {
        let tag = crate::ids::random_hex(12);
        lock(&self.logs).insert(tag.clone(), log);
        WitnessTag {
            tag,
            witnesses: self.clone(),
        }
    }

    fn get(&self, tag: &str) -> Option<ExchangeLog> {
        lock(&self.logs).get(tag).cloned()
    }
}

/// A registered witness tag; unregisters on drop.
#[derive(Debug)]
pub struct WitnessTag {
    pub tag: String,
    witnesses: Witnesses,
}

impl Drop for WitnessTag {
    fn drop(&mut self) {
        lock(&self.witnesses.logs).remove(&self.tag);
    }
}

struct Tvs {
    cfg: TvsConfig,
    key: Arc<SamlKey>,
    /// `http://<back host>:<port>` of the external-entity listener.
    entity_base: String,
    /// Signs [`TvsFault::ForeignKey`]'s Assertion: a certificate with the TVS's subject.
    impostor: Arc<SamlKey>,
    log: ExchangeLog,
    witnesses: Witnesses,
    metadata_xml: String,
    pending: Mutex<HashMap<String, Pending>>,
    artifacts: Mutex<HashMap<String, Issued>>,
}

impl Tvs {
    fn note(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(tvs = "mock", "{}", self.log.redact(&text));
        self.log
            .record(RawExchange::note(Party::Tvs, Party::Dva, text));
    }

    /// The log a login's artifact resolution goes to: its scenario's, while that scenario runs,
    /// else the TVS's own.
    fn witness_log(&self, tag: Option<&str>) -> ExchangeLog {
        tag.and_then(|t| self.witnesses.get(t))
            .unwrap_or_else(|| self.log.clone())
    }

    fn sp(&self, entity: &str) -> Option<&EntityMetadata> {
        self.cfg
            .service_providers
            .iter()
            .find(|s| s.entity_id == entity)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
pub struct TvsServers {
    pub front: Server,
    pub back: Server,
    /// Scenario logs by the tag their browser submits with the login.
    pub witnesses: Witnesses,
    /// The plain-HTTP target of the XXE fault.
    pub entity: EntityListener,
}

/// The plain-HTTP listener behind [`TvsFault::ExternalEntity`], on the back channel's address
/// and a port of its own: plain, without a client certificate, so that any XML parser that
/// fetches the entity gets through and is recorded. Stops when dropped.
#[derive(Debug)]
pub struct EntityListener {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EntityListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn start(
    cfg: TvsConfig,
    pki: &Pki,
    front: TcpListener,
    back: TcpListener,
    log: ExchangeLog,
) -> Result<TvsServers, TvsError> {
    let front_tls = tls::server_config(
        &*pki.leaf(Channel::Front, host_only(&cfg.front_host))?,
        ClientAuth::None,
    )?;
    let back_tls = tls::server_config(
        &*pki.leaf(Channel::Back, host_only(&cfg.back_host))?,
        ClientAuth::Required(cfg.client_roots.clone()),
    )?;
    let witnesses = Witnesses::default();
    let ip = back
        .local_addr()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |a| a.ip());
    let entity_std = std::net::TcpListener::bind((ip, 0))?;
    entity_std.set_nonblocking(true)?;
    let entity_listener = TcpListener::from_std(entity_std)?;
    let entity_port = entity_listener.local_addr()?.port();
    let tvs = Arc::new(Tvs {
        entity_base: format!("http://{}:{entity_port}", host_only(&cfg.back_host)),
        key: pki.saml_key(SIGNING_KEY)?,
        impostor: pki.saml_impostor(SIGNING_KEY)?,
        metadata_xml: cfg.metadata(pki)?,
        cfg,
        log,
        witnesses: witnesses.clone(),
        pending: Mutex::default(),
        artifacts: Mutex::default(),
    });
    let front_router = Router::new()
        .route("/metadata", get(metadata))
        .route("/sso", post(sso))
        .route("/login", post(login))
        .with_state(tvs.clone());
    let entity_router = Router::new()
        .route("/entity/{tag}", get(external_entity))
        .with_state(tvs.clone());
    let back_router = Router::new()
        .route("/ars", post(artifact_resolution))
        .with_state(tvs);
    let task = tokio::spawn(async move {
        let _ = axum::serve(entity_listener, entity_router).await;
    });
    Ok(TvsServers {
        front: tls::serve(front, front_tls, front_router, None),
        back: tls::serve(back, back_tls, back_router, None),
        witnesses,
        entity: EntityListener {
            port: entity_port,
            task,
        },
    })
}

/// `host[:port]` → `host`: the TVS's public names may carry a port when it cannot listen on 443.
pub fn host_only(authority: &str) -> &str {
    authority
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(h, _)| h)
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"nl\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

async fn metadata(State(tvs): State<Arc<Tvs>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        tvs.metadata_xml.clone(),
    )
        .into_response()
}

async fn sso(State(tvs): State<Arc<Tvs>>, body: Bytes) -> Response {
    let f = form(&body);
    let Some(saml_request) = f.get("SAMLRequest") else {
        return page(
            StatusCode::BAD_REQUEST,
            "Fout",
            "<p id=\"kt-error\">SAMLRequest ontbreekt.</p>",
        );
    };
    let (request, sp) = match AuthnRequest::from_post_binding(saml_request, |e| tvs.sp(e)) {
        Ok(x) => x,
        Err(e) => {
            tvs.note(format!("AuthnRequest refused: {e}"));
            return page(
                StatusCode::BAD_REQUEST,
                "Fout",
                &format!("<p id=\"kt-error\">{}</p>", escape(&e.to_string())),
            );
        }
    };
    if request.destination != tvs.cfg.sso_url() {
        tvs.note(format!(
            "AuthnRequest refused: Destination {} is not {}",
            request.destination,
            tvs.cfg.sso_url()
        ));
        return page(
            StatusCode::BAD_REQUEST,
            "Fout",
            "<p id=\"kt-error\">Destination klopt niet.</p>",
        );
    }
    let handle = crate::ids::random_hex(16);
    let sp = sp.clone();
    lock(&tvs.pending).insert(
        handle.clone(),
        Pending {
            request,
            sp,
            relay_state: f.get("RelayState").cloned().unwrap_or_default(),
        },
    );
    let loa_options: String = [Loa::Basic, Loa::Low, Loa::Substantial, Loa::High]
        .iter()
        .map(|l| {
            let name = serde_json::to_value(l)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let sel = if *l == tvs.cfg.loa { " selected" } else { "" };
            format!("<option value=\"{name}\"{sel}>{name}</option>")
        })
        .collect();
    page(
        StatusCode::OK,
        "Inloggen (test-TVS)",
        &format!(
            "<form id=\"kt-tvs-login\" method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"request\" value=\"{handle}\">\
             <label>BSN <input name=\"bsn\" value=\"{bsn}\"></label><label>Niveau <select name=\"loa\">{loa_options}</select></label>\
             <input type=\"hidden\" name=\"fault\" value=\"\"><input type=\"hidden\" name=\"witness\" value=\"\">\
             <button type=\"submit\" name=\"action\" value=\"login\">Inloggen</button>\
             <button type=\"submit\" name=\"action\" value=\"cancel\">Annuleren</button></form>",
            bsn = escape(&tvs.cfg.bsn),
        ),
    )
}

async fn login(State(tvs): State<Arc<Tvs>>, body: Bytes) -> Response {
    let f = form(&body);
    let Some(pending) = f.get("request").and_then(|h| lock(&tvs.pending).remove(h)) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Fout",
            "<p id=\"kt-error\">Onbekende of verlopen inlogpoging.</p>",
        );
    };
    let fault = match f.get("fault").map(String::as_str).filter(|s| !s.is_empty()) {
        None => None,
        Some(name) => match TvsFault::parse(name) {
            Some(fault) => Some(fault),
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "Fout",
                    &format!("<p id=\"kt-error\">Onbekende fout {}</p>", escape(name)),
                );
            }
        },
    };
    let loa = f
        .get("loa")
        .and_then(|l| serde_json::from_value::<Loa>(serde_json::Value::String(l.clone())).ok())
        .unwrap_or(tvs.cfg.loa);
    let Some(acs) = pending
        .sp
        .acs
        .iter()
        .find(|(i, _)| *i == pending.request.acs_index)
        .map(|(_, u)| u.clone())
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Fout",
            "<p id=\"kt-error\">Onbekende AssertionConsumerServiceIndex.</p>",
        );
    };
    // The TVS reports the level actually achieved; judging it against the minimum is the DV's job.
    let status = if f.get("action").map(String::as_str) == Some("cancel") {
        LoginStatus::Cancelled
    } else {
        LoginStatus::Success
    };
    let now = tvs.cfg.clock.utc();
    let mut spec = AssertionSpec {
        tvs_entity: TVS_ENTITY_ID.to_string(),
        audience: pending.sp.entity_id.clone(),
        recipient: acs.clone(),
        destination: acs.clone(),
        in_response_to: pending.request.id.clone(),
        artifact_resolve_id: String::new(),
        loa,
        bsn: f.get("bsn").cloned().unwrap_or_else(|| tvs.cfg.bsn.clone()),
        service_uuid: tvs.cfg.service_uuid.clone(),
        status,
        issued: now,
        not_before: now,
        not_on_or_after: now + time::Duration::minutes(2),
        encrypt_for: pending.sp.entity_id.clone(),
        encryption_cert: pending
            .sp
            .encryption_certs
            .first()
            .cloned()
            .unwrap_or_default(),
    };
    if let Some(fault) = fault {
        fault.apply(&mut spec, now);
    }
    let artifact = saml::new_artifact(&fault.map_or(TVS_ENTITY_ID.to_string(), |f| {
        f.artifact_issuer(TVS_ENTITY_ID)
    }));
    let created = tvs.cfg.clock.instant();
    let mut artifacts = lock(&tvs.artifacts);
    // A long-running TVS forgets artifacts past their lifetime: they can no longer resolve.
    artifacts.retain(|_, a| tvs.cfg.clock.since(a.created) <= tvs.cfg.artifact_lifetime);
    artifacts.insert(
        artifact.clone(),
        Issued {
            spec,
            fault,
            created,
            used: false,
            witness: f.get("witness").filter(|t| !t.is_empty()).cloned(),
        },
    );
    drop(artifacts);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("SAMLart", &artifact);
    if !pending.relay_state.is_empty() {
        q.append_pair("RelayState", &pending.relay_state);
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{acs}?{}", q.finish())) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn soap_fault(text: &str) -> (StatusCode, String) {
    let body = format!(
        "<soapenv:Envelope xmlns:soapenv=\"{ns}\"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>\
         <faultstring>{t}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        ns = saml::NS_SOAP,
        t = escape(text)
    );
    (StatusCode::INTERNAL_SERVER_ERROR, body)
}

async fn artifact_resolution(
    State(tvs): State<Arc<Tvs>>,
    axum::extract::Extension(peer): axum::extract::Extension<tls::PeerCertificates>,
    body: Bytes,
) -> Response {
    let xml = String::from_utf8_lossy(&body).into_owned();
    let (log, response) = resolve(&tvs, &xml);
    // The witness record: what the DVA asked and what it was given, faults included, and the
    // client certificate it presented (the judge compares its names with the DVA's host; the
    // mock TVS itself binds no certificate to a DV, see docs/security.md).
    let mut x = RawExchange::request(Party::Dva, Party::Tvs, "POST", &tvs.cfg.ars_url());
    x.started = None;
    x.client_certificate = peer.presented();
    x.request_headers
        .push(("content-type".into(), "text/xml; charset=utf-8".into()));
    x.request_body = Some(xml);
    x.status = Some(response.0.as_u16());
    x.response_headers
        .push(("content-type".into(), "text/xml; charset=utf-8".into()));
    x.response_body = Some(response.1.clone());
    log.record(x);
    (
        response.0,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        response.1,
    )
        .into_response()
}

/// Answers one ArtifactResolve: the status and SOAP body, and the log of the login that issued
/// the artifact (the TVS's own log for an unknown one).
fn resolve(tvs: &Tvs, xml: &str) -> (ExchangeLog, (StatusCode, String)) {
    let resolve = match saml::parse_artifact_resolve(xml, |e| tvs.sp(e)) {
        Ok(r) => r,
        Err(e) => {
            tvs.note(format!("ArtifactResolve refused: {e}"));
            // A refused request still belongs to the login whose artifact it names: its
            // scenario's log is where the judge looks for it (unverified, as a pointer only).
            let witness = saml::unverified_artifact(xml)
                .and_then(|a| lock(&tvs.artifacts).get(&a).and_then(|i| i.witness.clone()));
            return (
                tvs.witness_log(witness.as_deref()),
                soap_fault(&e.to_string()),
            );
        }
    };
    let issued = {
        let mut artifacts = lock(&tvs.artifacts);
        match artifacts.get_mut(&resolve.artifact) {
            Some(a)
                if !a.used
                    && tvs.cfg.clock.since(a.created) <= tvs.cfg.artifact_lifetime
                    && a.spec.encrypt_for == resolve.issuer =>
            {
                // Single use: spent on first resolution.
                a.used = true;
                Ok((
                    a.spec.clone(),
                    a.fault,
                    a.witness.clone(),
                    tvs.witness_log(a.witness.as_deref()),
                ))
            }
            Some(a) => {
                a.used = true;
                Err((a.spec.clone(), tvs.witness_log(a.witness.as_deref())))
            }
            None => {
                drop(artifacts);
                tvs.note("ArtifactResolve for an unknown artifact");
                return (
                    tvs.log.clone(),
                    soap_fault("artifact unknown, already resolved or expired"),
                );
            }
        }
    };
    let (mut spec, fault, witness, log) = match issued {
        Ok(x) => x,
        Err((mut spec, log)) => {
            // SAML bindings §3.6.6: an artifact that is spent, expired or not the requester's
            // is answered with Success and no message.
            tvs.note("ArtifactResolve for a used or expired artifact, or by another DV");
            spec.artifact_resolve_id = resolve.id;
            return match saml::forge::empty_artifact_response(&spec, &tvs.key) {
                Ok(xml) => (log, (StatusCode::OK, xml)),
                Err(e) => (log, soap_fault(&e.to_string())),
            };
        }
    };
    spec.artifact_resolve_id = resolve.id;
    let entity_url = format!(
        "{}/entity/{}",
        tvs.entity_base,
        witness.as_deref().unwrap_or("none")
    );
    let extras = saml::forge::Extras {
        impostor: Some(&tvs.impostor),
        entity_url: Some(&entity_url),
    };
    match saml::forge::artifact_response(&spec, &tvs.key, fault, extras) {
        Ok(xml) => (log, (StatusCode::OK, xml)),
        Err(e) => (log, soap_fault(&e.to_string())),
    }
}

/// GET /entity/{tag}: the target of [`TvsFault::ExternalEntity`]. A DV that resolves external
/// entities fetches it; the fetch is recorded in the log of the scenario whose login carried it,
/// where the judge finds it. A conformant DV never comes here.
async fn external_entity(
    State(tvs): State<Arc<Tvs>>,
    axum::extract::Path(tag): axum::extract::Path<String>,
) -> Response {
    let log = tvs.witness_log(Some(&tag));
    let mut x = RawExchange::request(
        Party::Dva,
        Party::Tvs,
        "GET",
        &format!("{}/entity/{tag}", tvs.entity_base),
    );
    x.started = None;
    x.status = Some(200);
    x.response_body = Some(saml::forge::ENTITY_TEXT.to_string());
    log.record(x);
    tvs.note("the external entity was fetched (XXE)");
    saml::forge::ENTITY_TEXT.into_response()
}
