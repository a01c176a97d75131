//! The mock PGO as a PGO under test (`koppeltest mock-pgo`): it collects each listed practice's
//! GP record on its own, as a PGO server does (not steered by scenario steps): read the lists
//! over HTTPS, resolve the practice, authorize through the browser, check the state, exchange
//! the code, ask the seven queries, follow `next`, refresh an expired token with the newest
//! refresh token, stop on `invalid_grant`, retry a 5xx after its Retry-After. Its
//! [`PgoFault`]s break exactly one of these habits each.
//!
//! It is the reference PGO of the PGO suite (`crate::bench`): without faults it passes every
//! PGO scenario, and each fault fails exactly the scenarios `requirements/pgo-faults.toml`
//! lists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Pgo, PgoFault, PgoProfile, PgoSetup, PgoTrust, Release, Selectors};
use crate::exchange::ExchangeLog;
use crate::lists::{Ocl, Whitelist, Zal};
use crate::pki::{Channel, Pki};
use crate::steps::{AuthorizeOutcome, HttpOutcome, HttpResult};
use crate::tls::HostMap;

/// What the suite's list server publishes besides the lists: where each host listens, and the
/// mock TVS's login host (which a browser visits though it is on no list).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SuiteHosts {
    /// Host name → port on the suite's address.
    pub ports: BTreeMap<String, u16>,
    pub tvs: String,
}

/// The file names the suite's list server serves under its base URL.
pub const ZAL_FILE: &str = "MedMij_Zorgaanbiederslijst.xml";
pub const OCL_FILE: &str = "MedMij_OAuthclientlist.xml";
pub const WHITELIST_FILE: &str = "MedMij_Whitelist.xml";
pub const HOSTS_FILE: &str = "koppeltest-hosts.json";

/// How the mock PGO collects.
#[derive(Clone)]
pub struct Collector {
    pub profile: PgoProfile,
    /// The list server's base URL, `https://lists.koppeltest.test:PORT`.
    pub lists_url: String,
    /// Where every host of the suite is reached.
    pub connect_to: IpAddr,
    pub pki: Arc<Pki>,
    pub faults: BTreeSet<PgoFault>,
    pub request_timeout: Duration,
    /// How long [`PgoFault::Impatient`] waits for one resource answer before it closes the
    /// connection and asks again (only resource requests: the rest of the flow is unhurried).
    pub patience: Option<Duration>,
    /// Collect only these practices (all listed ones when empty).
    pub practices: Vec<String>,
}

/// What one practice's collection came to, in a line.
#[derive(Debug, Clone)]
pub struct Collected {
    pub practice: String,
    pub summary: String,
}

/// The lists and hosts as fetched from the list server.
pub struct Published {
    pub zal: Zal,
    pub ocl: Ocl,
    pub whitelist: Arc<Whitelist>,
    pub hosts: SuiteHosts,
}

impl Collector {
    fn host_map(&self, ports: &BTreeMap<String, u16>) -> HostMap {
        ports
            .iter()
            .map(|(h, p)| (h.clone(), SocketAddr::new(self.connect_to, *p)))
            .collect()
    }

    /// Fetches the lists (and the hosts file) over HTTPS, as a PGO reads the lists.
    pub async fn fetch(&self) -> Result<Published, String> {
        let base = reqwest::Url::parse(&self.lists_url)
            .map_err(|e| format!("--lists {:?} is not a URL: {e}", self.lists_url))?;
        let host = base.host_str().ok_or("--lists has no host")?.to_string();
        let port = base.port_or_known_default().unwrap_or(443);
        let hosts: HostMap = [(host, SocketAddr::new(self.connect_to, port))]
            .into_iter()
            .collect();
        let client = crate::tls::http_client(
            crate::tls::client_config(&self.pki.roots(Channel::Front), None)
                .map_err(|e| e.to_string())?,
            &hosts,
            crate::tls::ClientOptions {
                timeout: self.request_timeout.max(Duration::from_secs(5)),
                cookies: None,
            },
        )
        .map_err(|e| e.to_string())?;
        let get = |file: &'static str| {
            let client = client.clone();
            let url = format!("{}/{file}", self.lists_url.trim_end_matches('/'));
            async move {
                let resp = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {}", crate::tls::error_chain(&e)))?;
                if !resp.status().is_success() {
                    return Err(format!("{url}: HTTP {}", resp.status()));
                }
                let body = crate::tls::read_limited(resp, 4 << 20)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                String::from_utf8(body).map_err(|e| format!("{url}: {e}"))
            }
        };
        let (zal, ocl, whitelist, hosts) = tokio::try_join!(
            get(ZAL_FILE),
            get(OCL_FILE),
            get(WHITELIST_FILE),
            get(HOSTS_FILE)
        )?;
        Ok(Published {
            zal: crate::lists::parse_zal(&zal).map_err(|e| format!("{ZAL_FILE}: {e}"))?,
            ocl: crate::lists::parse_ocl(&ocl).map_err(|e| format!("{OCL_FILE}: {e}"))?,
            whitelist: Arc::new(
                crate::lists::parse_whitelist(&whitelist)
                    .map_err(|e| format!("{WHITELIST_FILE}: {e}"))?,
            ),
            hosts: serde_json::from_str(&hosts).map_err(|e| format!("{HOSTS_FILE}: {e}"))?,
        })
    }

    /// Collects from every listed practice (or those asked for), `jobs` at a time, calling
    /// `done` as each finishes.
    pub async fn collect_all(
        &self,
        jobs: usize,
        done: impl Fn(&Collected) + Send + Sync,
    ) -> Result<Vec<Collected>, String> {
        let published = Arc::new(self.fetch().await?);
        if published.ocl.find(&self.profile.hostname).is_none() {
            return Err(format!(
                "the OCL does not list this PGO's hostname {}",
                self.profile.hostname
            ));
        }
        let names: Vec<String> = published
            .zal
            .zorgaanbieders
            .iter()
            .map(|z| z.naam.clone())
            .filter(|n| self.practices.is_empty() || self.practices.contains(n))
            .collect();
        if names.is_empty() {
            return Err(
                "no practice to collect from (the ZAL lists none of those asked for)".into(),
            );
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (i, name) in names.iter().enumerate() {
            let me = self.clone();
            let published = published.clone();
            let name = name.clone();
            let permits = permits.clone();
            set.spawn(async move {
                let _permit = permits.acquire().await;
                let summary = me.collect_one(&published, &name).await;
                (
                    i,
                    Collected {
                        practice: name,
                        summary,
                    },
                )
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok((i, c)) = r {
                done(&c);
                out.push((i, c));
            }
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out.into_iter().map(|(_, c)| c).collect())
    }

    async fn collect_one(&self, published: &Published, practice: &str) -> String {
        let endpoints = match published
            .zal
            .resolve(practice, crate::matrix::GEGEVENSDIENST)
        {
            Ok(e) => e,
            Err(e) => return format!("not collected: {e}"),
        };
        let identity = match self.pki.leaf(Channel::Back, &self.profile.hostname) {
            Ok(l) => l,
            Err(e) => return format!("not collected: no client certificate: {e}"),
        };
        let pgo = Pgo::new(PgoSetup {
            profile: self.profile.clone(),
            practice: practice.to_string(),
            endpoints,
            whitelist: published.whitelist.clone(),
            selectors: Selectors::default(),
            tvs_host: Some(published.hosts.tvs.clone()),
            trust: PgoTrust {
                front_roots: self.pki.roots(Channel::Front),
                back_roots: self.pki.roots(Channel::Back),
                identity,
            },
            hosts: self.host_map(&published.hosts.ports),
            // The mock PGO keeps no evidence of its own here: the suite judges what the DVA saw.
            log: ExchangeLog::discarding(),
            other_identities: Arc::new(|_| None),
            bad_identities: Arc::new(|_| None),
            request_timeout: self.request_timeout,
            limits: crate::matrix::Limits::default(),
            faults: self.faults.clone(),
        });
        match pgo {
            Ok(pgo) => collect(&pgo, self.patience).await,
            Err(e) => format!("not collected: {e}"),
        }
    }
}

/// The counter behind [`PgoFault::PredictableState`].
static STATE_COUNTER: AtomicU32 = AtomicU32::new(1);

fn step<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    // The values below are fixed and valid for the step types; a failure is a programming error
    // caught by every test that collects.
    serde_json::from_value(value).expect("a fixed step definition")
}

/// One collection from one practice, as a PGO server does it; returns what happened in a line.
pub async fn collect(pgo: &Pgo, patience: Option<Duration>) -> String {
    let profile = &pgo.profile;
    let mut set = BTreeMap::new();
    if pgo.has(PgoFault::PredictableState) {
        let n = STATE_COUNTER.fetch_add(1, Ordering::SeqCst);
        set.insert("state".to_string(), format!("{n:04}"));
    }
    if pgo.has(PgoFault::ClientIdNotHostname) {
        set.insert("client_id".to_string(), profile.name.clone());
    }
    let other_redirect = format!("{}/other", profile.redirect_uri.trim_end_matches('/'));
    if pgo.has(PgoFault::RedirectUriUnregistered) {
        set.insert("redirect_uri".to_string(), other_redirect.clone());
    }
    if pgo.has(PgoFault::ScopeWrongDialect) {
        let naam = pgo.practice.trim_end_matches("@medmij").to_string();
        let wrong = match profile.release {
            Release::V1_0 => naam,
            _ => profile.gegevensdiensten.join(" "),
        };
        set.insert("scope".to_string(), wrong);
    }
    let authorize: crate::scenario::AuthorizeStep =
        step(serde_json::json!({ "id": "authorize", "set": set }));
    let login = crate::scenario::TvsLogin::default();
    let mut attempt = pgo.authorize(&authorize, &login).await;
    let mut retried = false;
    let code = loop {
        match &attempt.outcome {
            AuthorizeOutcome::RedirectedBack { params, .. } => {
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                if let Some(error) = get("error") {
                    if pgo.has(PgoFault::AuthorizeRetried) && !retried {
                        retried = true;
                        attempt = pgo.authorize(&authorize, &login).await;
                        continue;
                    }
                    return format!("the DVA answered error={error}; shown to the user, stopped");
                }
                if get("state") != attempt.sent_state && !pgo.has(PgoFault::StateNotChecked) {
                    return "the state that came back is not the one sent: the code is not exchanged"
                        .to_string();
                }
                match get("code") {
                    Some(c) => break c,
                    None => return "the redirect back has no code".to_string(),
                }
            }
            AuthorizeOutcome::Page { status, title, .. } => {
                return format!(
                    "the authorization stopped on a page (HTTP {status}, {})",
                    title.as_deref().unwrap_or("no title")
                );
            }
            AuthorizeOutcome::Broken { reason, .. } => {
                return format!("the authorization stopped: {reason}");
            }
        }
    };
    let mut token_step = serde_json::json!({ "id": "token", "code_from": "authorize" });
    if pgo.has(PgoFault::TokenInQuery) {
        token_step["in_query"] = true.into();
    }
    if pgo.has(PgoFault::NoClientCertificate) {
        token_step["bad_certificate"] = "none".into();
    }
    if pgo.has(PgoFault::RedirectUriDoubleEncoded) {
        token_step["set"] = serde_json::json!({ "redirect_uri": "{redirect_uri_encoded}" });
    } else if pgo.has(PgoFault::RedirectUriUnregistered) {
        token_step["set"] = serde_json::json!({ "redirect_uri": other_redirect });
    }
    let token_step: crate::scenario::TokenStep = step(token_step);
    let answer = pgo.token(&token_step, &code).await;
    let Some(json) = answer.json().filter(|_| status(&answer) == Some(200)) else {
        return format!("no token: {}", describe(&answer));
    };
    if pgo.has(PgoFault::StrictTokenParser) {
        let known = [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
        ];
        if let Some(extra) = json
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
        {
            return format!("the token response has a member it does not know ({extra}): stopped");
        }
    }
    let (Some(access), refresh) = (
        json["access_token"].as_str().map(str::to_string),
        json["refresh_token"].as_str().map(str::to_string),
    ) else {
        return "the token response has no access_token".to_string();
    };
    let mut tokens = Tokens {
        access,
        first_refresh: refresh.clone(),
        refresh,
        refreshes: 0,
    };
    let mut asked = 0;
    let mut pages = 0;
    for query in crate::fixtures::GP_QUERIES {
        if query.name == "encounters" && pgo.has(PgoFault::QuerySkipped) {
            continue;
        }
        asked += 1;
        match fetch_query(pgo, query, &mut tokens, patience).await {
            Ok(n) => pages += n,
            Err(Stop(why)) => {
                return format!("stopped after {asked} of 7 queries: {why}");
            }
        }
    }
    format!(
        "collected {asked} queries in {pages} pages, {} refreshes",
        tokens.refreshes
    )
}

struct Tokens {
    access: String,
    refresh: Option<String>,
    first_refresh: Option<String>,
    refreshes: usize,
}

/// The whole collection stops (consent withdrawn, or a fault that gives up).
struct Stop(String);

fn status(r: &HttpResult) -> Option<u16> {
    match r.outcome {
        HttpOutcome::Response { status, .. } => Some(status),
        HttpOutcome::Transport { .. } => None,
    }
}

fn describe(r: &HttpResult) -> String {
    match &r.outcome {
        HttpOutcome::Response { status, body, .. } => {
            format!("HTTP {status} {}", crate::limits::shorten(body))
        }
        HttpOutcome::Transport { reason } => reason.clone(),
    }
}

/// One query through all its pages; the number of pages read.
async fn fetch_query(
    pgo: &Pgo,
    query: &crate::fixtures::GpQuery,
    tokens: &mut Tokens,
    patience: Option<Duration>,
) -> Result<usize, Stop> {
    let profile = &pgo.profile;
    let today = time::OffsetDateTime::now_utc().date();
    let mut relative = query.path.replace("{today}", &today.to_string());
    if query.name == "results" && (profile.lab_date_filter != pgo.has(PgoFault::LabDateInverted)) {
        relative.push_str(&format!(
            "&date=ge{}",
            crate::fixtures::lab_window_start(today)
        ));
    }
    let accept = if pgo.has(PgoFault::AcceptHeaderR4) {
        "application/fhir+json; fhirVersion=4.0".to_string()
    } else {
        profile.accept.clone()
    };
    let resource_host = reqwest::Url::parse(&pgo.endpoints.resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    let mut next = Some(super::resource_url(&pgo.endpoints.resource, &relative));
    let mut seen = BTreeSet::new();
    let (mut server_errors, mut transport_errors, mut pages) = (0, 0, 0);
    let mut just_refreshed = false;
    while let Some(url) = next.take() {
        let request = pgo.get_resource(&url, &tokens.access, &accept);
        let page = match patience.filter(|_| pgo.has(PgoFault::Impatient)) {
            // Dropping the request closes its connection: the DVA sees it abandoned.
            Some(p) => tokio::time::timeout(p, request)
                .await
                .unwrap_or_else(|_| HttpResult::broken("gave up waiting".into())),
            None => request.await,
        };
        let refreshed = std::mem::take(&mut just_refreshed);
        match status(&page) {
            Some(401) => {
                if pgo.has(PgoFault::NoRefresh) {
                    return Err(Stop("the access token was refused; gave up".into()));
                }
                if refreshed {
                    return Err(Stop(
                        "a freshly refreshed token was refused too: stopped".into(),
                    ));
                }
                just_refreshed = true;
                if tokens.refreshes >= crate::limits::MAX_COLLECT_REFRESHES {
                    return Err(Stop("too many refreshes".into()));
                }
                refresh(pgo, tokens).await?;
                next = Some(url);
            }
            Some(s) if s >= 500 => {
                server_errors += 1;
                if pgo.has(PgoFault::NoRetryOnServerError) || server_errors > 3 {
                    return Ok(pages);
                }
                let wait = page
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(5);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                next = Some(url);
            }
            Some(200) => {
                pages += 1;
                if pgo.has(PgoFault::PagingNotFollowed) {
                    return Ok(pages);
                }
                let any_host = pgo.has(PgoFault::NextLinkHostUnchecked);
                next = page.next_link().filter(|link| {
                    reqwest::Url::parse(link).is_ok_and(|u| {
                        u.scheme() == "https"
                            && (any_host || u.host_str().map(str::to_string) == resource_host)
                    }) && seen.insert(link.clone())
                        && pages < crate::limits::MAX_PAGES
                });
            }
            Some(_) => return Ok(pages),
            None => {
                // A dropped connection or a time-out: ask once more, then give this query up.
                transport_errors += 1;
                if transport_errors > 1 {
                    return Ok(pages);
                }
                next = Some(url);
            }
        }
    }
    Ok(pages)
}

/// Refreshes the access token with the newest refresh token (the first one under
/// [`PgoFault::OldRefreshTokenReused`]).
async fn refresh(pgo: &Pgo, tokens: &mut Tokens) -> Result<(), Stop> {
    let presented = if pgo.has(PgoFault::OldRefreshTokenReused) {
        tokens.first_refresh.clone()
    } else {
        tokens.refresh.clone()
    };
    let Some(presented) = presented else {
        return Err(Stop("no refresh token to renew with".into()));
    };
    tokens.refreshes += 1;
    let step: crate::scenario::RefreshStep =
        step(serde_json::json!({ "id": "refresh", "token_from": "token" }));
    let answer = pgo.refresh(&step, &presented).await;
    match (status(&answer), answer.json()) {
        (Some(200), Some(json)) => {
            if let Some(a) = json["access_token"].as_str() {
                tokens.access = a.to_string();
            }
            if let Some(r) = json["refresh_token"].as_str() {
                tokens.refresh = Some(r.to_string());
            }
            Ok(())
        }
        (_, Some(json)) if json["error"] == "invalid_grant" => {
            if pgo.has(PgoFault::InvalidGrantIgnored) {
                Ok(())
            } else {
                Err(Stop(
                    "the refresh was answered invalid_grant: consent is gone".into(),
                ))
            }
        }
        _ => Err(Stop(format!("the refresh failed: {}", describe(&answer)))),
    }
}
