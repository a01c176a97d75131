//! `koppeltest preflight`: is the practice connected? For each matrix row, in seconds and
//! without logging anyone in, the things a full run needs before it can tell anything about the
//! DVA: the practice on the ZAL with gegevensdienst 49 in the release and interface version the
//! row claims, a name in the naming form, its endpoints on the Whitelist, resolving and accepting
//! TLS, certificates that do not expire soon, and every PGO column on the OCL.
//!
//! The list checks are pure functions of the prepared row. The network checks open TCP
//! connections and TLS handshakes only (no HTTP, no OAuth, no SAML), each bounded by
//! [`Options::timeout`], rows concurrently; an endpoint that does not answer is a `fail` with the
//! reason, never a hang. A simulated row's DVA is started for the probe as a scenario would get
//! it; an external row is probed where its host map (or DNS) says it is.
//!
//! What it deliberately does not do: judge TLS versions and suites (the `tls.*` scenarios of a
//! run do), or send any request a DVA could log as a login attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::exit;
use crate::lists::{Endpoints, Naming};
use crate::matrix::{GEGEVENSDIENST, PreparedRow};
use crate::pgo::PgoProfile;
use crate::pki::Channel;
use crate::runner::Prepared;
use crate::tls::{HostMap, error_chain};

/// The checks of every row, in the order they are shown.
pub const CHECKS: [&str; 9] = [
    "zal.listed",
    "zal.service-49",
    "zal.release",
    "zal.naming",
    "whitelist.endpoints",
    "ocl.columns",
    "dns.resolves",
    "tls.accepts",
    "certificate.expiry",
];

/// How long a TLS 1.3 connection is watched after the handshake for the server refusing the
/// client certificate: in TLS 1.3 the server judges it after the client has finished, so a
/// refusal arrives as an alert on the first read.
const REFUSAL_WINDOW: Duration = Duration::from_millis(300);

/// A check's status. The order is severity: a row's status is its worst check's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not checked, because a check it depends on failed (the detail says which).
    Skip,
    /// Connected, but something needs attention before it breaks (a certificate expiring soon,
    /// a name outside the naming policy).
    Warn,
    /// A full run makes no sense until this is fixed.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One named check of one row.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// One matrix row's checks.
#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    pub row: String,
    pub practice: String,
    /// `simulated` or `external`.
    pub target: &'static str,
    /// The worst of the checks.
    pub status: Status,
    /// Days until the earliest expiry among the certificates the endpoints presented
    /// (negative: expired); absent when no chain was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_to_expiry: Option<i64>,
    pub checks: Vec<Check>,
}

/// What `koppeltest preflight` prints, as a table or as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub matrix: String,
    /// No check failed: a full run makes sense.
    pub ready: bool,
    pub exit_code: i32,
    pub elapsed_ms: u64,
    /// The matrix's `[tls] expiry_warning_days`.
    pub expiry_warning_days: u32,
    pub rows: Vec<RowReport>,
}

/// How the network probes behave.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The longest one probe (a name lookup, a connection with its handshake) may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(3),
        }
    }
}

/// Runs every row's checks concurrently. `unresolved[i]` is why row `i`'s practice did not
/// resolve to endpoints ([`crate::matrix::Matrix::prepare_unresolved`]). `Err` only when the
/// harness could not do its job: a simulated DVA that did not start.
pub async fn run(
    prepared: Arc<Prepared>,
    unresolved: Vec<Option<String>>,
    options: Options,
) -> Result<PreflightReport, String> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for ix in 0..prepared.rows.len() {
        let unresolved = unresolved.get(ix).cloned().flatten();
        let prepared = prepared.clone();
        tasks.spawn(async move {
            let report = probe_row(&prepared, ix, unresolved.as_deref(), options).await;
            (ix, report)
        });
    }
    let mut rows: Vec<Option<RowReport>> = vec![None; prepared.rows.len()];
    while let Some(joined) = tasks.join_next().await {
        let (ix, report) = joined.map_err(|e| format!("a preflight task failed: {e}"))?;
        rows[ix] = Some(report?);
    }
    let rows: Vec<RowReport> = rows.into_iter().flatten().collect();
    let ready = rows.iter().all(|r| r.status != Status::Fail);
    Ok(PreflightReport {
        matrix: prepared.matrix.name.clone(),
        ready,
        exit_code: if ready {
            exit::OK
        } else {
            exit::CONFORMANCE_FAILURE
        },
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        expiry_warning_days: prepared.matrix.tls.expiry_warning_days,
        rows,
    })
}

async fn probe_row(
    prepared: &Prepared,
    ix: usize,
    unresolved: Option<&str>,
    options: Options,
) -> Result<RowReport, String> {
    let row = &prepared.rows[ix];
    let mut checks = list_checks(row, &prepared.matrix.columns, unresolved);
    let (network, days) = match unresolved {
        Some(reason) => (
            skipped_network(&format!("no endpoints to probe: {reason}")),
            None,
        ),
        None => match &row.external {
            Some(ext) => {
                let trust = Trust {
                    front_roots: ext.front_roots.clone(),
                    back_roots: ext.back_roots.clone(),
                    identity: prepared.matrix.columns.first().and_then(|c| {
                        Some((c.hostname.clone(), ext.identities.get(&c.id)?.clone()))
                    }),
                };
                network_checks(row, &ext.hosts, &trust, prepared, options).await
            }
            None => {
                let dva = crate::runner::start_simulated(prepared, row)
                    .await
                    .map_err(|e| {
                        format!("row {}: the simulated DVA did not start: {e}", row.row.id)
                    })?;
                let identity = match prepared.matrix.columns.first() {
                    Some(c) => Some((
                        c.hostname.clone(),
                        prepared
                            .pki
                            .leaf(Channel::Back, &c.hostname)
                            .map_err(|e| e.to_string())?,
                    )),
                    None => None,
                };
                let trust = Trust {
                    front_roots: prepared.pki.roots(Channel::Front),
                    back_roots: prepared.pki.roots(Channel::Back),
                    identity,
                };
                let result = network_checks(row, dva.hosts(), &trust, prepared, options).await;
                dva.shutdown().await;
                result
            }
        },
    };
    checks.extend(network);
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    Ok(RowReport {
        row: row.row.id.clone(),
        practice: row.row.practice.clone(),
        target: if row.external.is_some() {
            "external"
        } else {
            "simulated"
        },
        status,
        days_to_expiry: days,
        checks,
    })
}

/// The checks that read the row's lists only: ZAL, naming, Whitelist, OCL.
pub fn list_checks(
    row: &PreparedRow,
    columns: &[PgoProfile],
    unresolved: Option<&str>,
) -> Vec<Check> {
    let zal = &row.zal;
    let practice = &row.row.practice;
    let mut out = Vec::new();
    let entry = zal.zorgaanbieders.iter().find(|z| &z.naam == practice);
    let list = format!("ZAL release {}, Volgnummer {}", zal.release, zal.volgnummer);
    out.push(match entry {
        Some(_) => check(
            "zal.listed",
            Status::Ok,
            format!("{practice} is on the {list}"),
        ),
        None => {
            // Names are compared exactly; a near miss in case or spacing is the likely mistake.
            let near = zal
                .zorgaanbieders
                .iter()
                .find(|z| z.naam.trim().eq_ignore_ascii_case(practice.trim()))
                .map(|z| format!("; the ZAL has {:?} (names are compared exactly)", z.naam))
                .unwrap_or_default();
            check(
                "zal.listed",
                Status::Fail,
                format!("{practice} is not on the {list}{near}"),
            )
        }
    });
    let services: Vec<&crate::lists::Gegevensdienst> = entry
        .map(|z| {
            z.diensten
                .iter()
                .filter(|d| d.id == GEGEVENSDIENST)
                .collect()
        })
        .unwrap_or_default();
    out.push(match (entry, services.is_empty(), unresolved) {
        (None, _, _) => check(
            "zal.service-49",
            Status::Skip,
            "the practice is not on the ZAL",
        ),
        (Some(z), true, _) => {
            let offered: Vec<&str> = z.diensten.iter().map(|d| d.id.as_str()).collect();
            check(
                "zal.service-49",
                Status::Fail,
                format!(
                    "{practice} offers no gegevensdienst {GEGEVENSDIENST} (offers: {})",
                    if offered.is_empty() {
                        "none".to_string()
                    } else {
                        offered.join(", ")
                    }
                ),
            )
        }
        (Some(_), false, Some(reason)) => check("zal.service-49", Status::Fail, reason),
        (Some(_), false, None) => check(
            "zal.service-49",
            Status::Ok,
            format!(
                "gegevensdienst {GEGEVENSDIENST}: authorize {}, token {}, resource {}",
                row.endpoints.authorization, row.endpoints.token, row.endpoints.resource
            ),
        ),
    });
    out.push(release_check(row, &services));
    out.push(match crate::lists::judge_name(practice, zal.release) {
        Naming::Follows(form) => check("zal.naming", Status::Ok, format!("{practice}: {form}")),
        Naming::Warning(m) => check("zal.naming", Status::Warn, m),
        Naming::Invalid(m) => check("zal.naming", Status::Fail, m),
    });
    out.push(whitelist_check(row, unresolved.is_some()));
    out.push(ocl_check(row, columns));
    out
}

/// `zal.release`: the row's claimed ZAL release and InterfaceversieId against the entry of
/// gegevensdienst 49. [U] A row that claims neither has nothing to compare: `ok`, with what the
/// ZAL says, so a coalition can copy it into the row.
fn release_check(row: &PreparedRow, services: &[&crate::lists::Gegevensdienst]) -> Check {
    const NAME: &str = "zal.release";
    if services.is_empty() {
        return check(NAME, Status::Skip, "no gegevensdienst 49 to compare");
    }
    let release = row.zal.release;
    let versions: Vec<&str> = services
        .iter()
        .filter_map(|s| s.interfaceversie.as_deref())
        .collect();
    let published = if versions.is_empty() {
        format!("release {release}")
    } else {
        format!("release {release}, interfaceversie {}", versions.join(", "))
    };
    let mut problems = Vec::new();
    if let Some(claimed) = row.row.zal_release {
        if claimed != release {
            problems.push(format!(
                "the row claims release {claimed}, the ZAL is release {release}"
            ));
        }
    }
    if let Some(claimed) = &row.row.interfaceversie {
        if release < 3 {
            problems.push(format!(
                "the row claims interfaceversie {claimed}, a release-{release} ZAL has none"
            ));
        } else if !versions.contains(&claimed.as_str()) {
            problems.push(format!(
                "the row claims interfaceversie {claimed}, the ZAL publishes gegevensdienst 49 \
                 under {}",
                if versions.is_empty() {
                    "none".to_string()
                } else {
                    versions.join(", ")
                }
            ));
        }
    }
    match (
        problems.is_empty(),
        row.row.zal_release.is_some() || row.row.interfaceversie.is_some(),
    ) {
        (false, _) => check(NAME, Status::Fail, problems.join("; ")),
        (true, true) => check(NAME, Status::Ok, format!("{published}, as the row claims")),
        (true, false) => check(
            NAME,
            Status::Ok,
            format!(
                "{published} (the row claims none: set zal_release/interfaceversie to compare)"
            ),
        ),
    }
}

fn endpoint_list(endpoints: &Endpoints) -> [(&'static str, &str); 3] {
    [
        ("authorization", endpoints.authorization.as_str()),
        ("token", endpoints.token.as_str()),
        ("resource", endpoints.resource.as_str()),
    ]
}

fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// `whitelist.endpoints`: every endpoint's host on the row's Whitelist.
fn whitelist_check(row: &PreparedRow, unresolved: bool) -> Check {
    const NAME: &str = "whitelist.endpoints";
    if unresolved {
        return check(NAME, Status::Skip, "no endpoints from the ZAL");
    }
    // One line per host, naming the endpoints it serves.
    let mut hosts: Vec<(String, bool, Vec<&str>)> = Vec::new();
    for (what, uri) in endpoint_list(&row.endpoints) {
        let host = host_of(uri);
        let listed = row.whitelist.check(uri).is_ok();
        match hosts.iter_mut().find(|(h, _, _)| *h == host) {
            Some((_, _, whats)) => whats.push(what),
            None => hosts.push((host, listed, vec![what])),
        }
    }
    let line = |(h, _, whats): &(String, bool, Vec<&str>)| format!("{h} ({})", whats.join(", "));
    let on: Vec<String> = hosts.iter().filter(|h| h.1).map(line).collect();
    let off: Vec<String> = hosts.iter().filter(|h| !h.1).map(line).collect();
    if off.is_empty() {
        check(
            NAME,
            Status::Ok,
            format!("on the Whitelist: {}", on.join(", ")),
        )
    } else {
        check(
            NAME,
            Status::Fail,
            format!("not on the Whitelist: {}", off.join(", ")),
        )
    }
}

/// `ocl.columns`: every PGO column's hostname on the row's OCL (the DVA refuses a client_id it
/// does not find there).
fn ocl_check(row: &PreparedRow, columns: &[PgoProfile]) -> Check {
    const NAME: &str = "ocl.columns";
    let missing: Vec<String> = columns
        .iter()
        .filter(|c| row.ocl.find(&c.hostname).is_none())
        .map(|c| format!("{} ({})", c.id, c.hostname))
        .collect();
    if missing.is_empty() {
        let found: Vec<String> = columns
            .iter()
            .filter_map(|c| row.ocl.find(&c.hostname))
            .map(|c| format!("{} ({})", c.hostname, c.organisatienaam))
            .collect();
        check(
            NAME,
            Status::Ok,
            format!("on the OCL: {}", found.join(", ")),
        )
    } else {
        check(
            NAME,
            Status::Fail,
            format!("not on the OCL: {}", missing.join(", ")),
        )
    }
}

fn skipped_network(reason: &str) -> Vec<Check> {
    ["dns.resolves", "tls.accepts", "certificate.expiry"]
        .into_iter()
        .map(|name| check(name, Status::Skip, reason))
        .collect()
}

/// The trust a probe uses: the row's roots per channel, and the PGO node certificate it
/// presents on the back channel (the first column's), with its hostname.
struct Trust {
    front_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    back_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    identity: Option<(String, Arc<crate::pki::Leaf>)>,
}

/// One host and port to probe, with the endpoints it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    channel: Channel,
    serves: Vec<&'static str>,
}

impl Target {
    fn label(&self) -> String {
        format!("{} ({})", self.host, self.serves.join(", "))
    }
}

/// The distinct hosts and ports of a row's endpoints: the authorization endpoint on the front
/// channel, token and resource on the back channel (often one host).
fn targets(endpoints: &Endpoints) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for (what, uri) in endpoint_list(endpoints) {
        let Some(url) = url::Url::parse(uri).ok() else {
            continue;
        };
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let channel = if what == "authorization" {
            Channel::Front
        } else {
            Channel::Back
        };
        match out
            .iter_mut()
            .find(|t| t.host == host && t.port == port && t.channel == channel)
        {
            Some(t) => t.serves.push(what),
            None => out.push(Target {
                host: host.to_string(),
                port,
                channel,
                serves: vec![what],
            }),
        }
    }
    out
}

/// Where `host` is: the host map's address (loopback servers, `resolve` overrides), or DNS.
async fn address(
    host: &str,
    port: u16,
    hosts: &HostMap,
    timeout: Duration,
) -> Result<(SocketAddr, &'static str), String> {
    if let Some(addr) = hosts.get(host) {
        return Ok((*addr, "host map"));
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(format!("no DNS answer within {} ms", timeout.as_millis())),
        Ok(Err(e)) => Err(format!("DNS: {e}")),
        Ok(Ok(mut addrs)) => addrs
            .next()
            .map(|a| (a, "DNS"))
            .ok_or_else(|| "DNS: no address".to_string()),
    }
}

/// The three network checks of a row, and the days until its earliest certificate expiry.
async fn network_checks(
    row: &PreparedRow,
    hosts: &HostMap,
    trust: &Trust,
    prepared: &Prepared,
    options: Options,
) -> (Vec<Check>, Option<i64>) {
    let warn_days = prepared.matrix.tls.expiry_warning_days;
    let mut dns = Vec::new();
    let mut tls = Vec::new();
    let mut expiry = Vec::new();
    let mut earliest: Option<i64> = None;
    for target in targets(&row.endpoints) {
        let addr = match address(&target.host, target.port, hosts, options.timeout).await {
            Ok((addr, how)) => {
                dns.push((Status::Ok, format!("{} → {addr} ({how})", target.host)));
                addr
            }
            Err(e) => {
                dns.push((Status::Fail, format!("{}: {e}", target.host)));
                let why = format!("{}: not resolved", target.host);
                tls.push((Status::Skip, why.clone()));
                expiry.push((Status::Skip, why));
                continue;
            }
        };
        tls.push(
            match accepts_tls(addr, &target, trust, options.timeout).await {
                Ok(how) => (Status::Ok, format!("{}: {how}", target.label())),
                Err(e) => (Status::Fail, format!("{}: {e}", target.label())),
            },
        );
        expiry.push(
            match crate::tls::presented_chain(addr, &target.host, options.timeout).await {
                Ok(chain) => {
                    let (status, detail, days) = judge_expiry(&chain, now_unix(), warn_days);
                    if let Some(d) = days {
                        earliest = Some(earliest.map_or(d, |e| e.min(d)));
                    }
                    (status, format!("{}: {detail}", target.host))
                }
                Err(e) => (
                    Status::Fail,
                    format!("{}: no certificate seen: {e}", target.host),
                ),
            },
        );
    }
    let merge = |name: &'static str, parts: Vec<(Status, String)>| {
        let status = parts.iter().map(|(s, _)| *s).max().unwrap_or(Status::Skip);
        let detail: Vec<String> = parts.into_iter().map(|(_, d)| d).collect();
        check(name, status, detail.join("; "))
    };
    let mut expiry_check = merge("certificate.expiry", expiry);
    expiry_check
        .detail
        .push_str(&format!(" (warning below {warn_days} days)"));
    (
        vec![
            merge("dns.resolves", dns),
            merge("tls.accepts", tls),
            expiry_check,
        ],
        earliest,
    )
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `certificate.expiry` of one chain: `fail` when a certificate has expired or is not yet
/// valid, `warn` when one expires in fewer than `warn_days` days. Also returns the days.
pub fn judge_expiry(chain: &[Vec<u8>], now: i64, warn_days: u32) -> (Status, String, Option<i64>) {
    let Some(days) = crate::checks::earliest_expiry_days(chain, now) else {
        return (
            Status::Fail,
            "the presented chain has no readable certificate".to_string(),
            None,
        );
    };
    let not_yet_valid = chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .any(|(_, c)| c.validity().not_before.timestamp() > now);
    let (status, detail) = if days < 0 {
        // The date says more than a floored day count ("-1 days" is "some hours ago").
        let expired_on = chain
            .iter()
            .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, c)| c.validity().not_after.to_datetime())
            .min()
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        (Status::Fail, format!("expired on {expired_on}"))
    } else if not_yet_valid {
        (
            Status::Fail,
            format!("a certificate in the chain is not valid yet (expires in {days} days)"),
        )
    } else if days < i64::from(warn_days) {
        (Status::Warn, format!("expires in {days} days"))
    } else {
        (Status::Ok, format!("{days} days to expiry"))
    };
    (status, detail, Some(days))
}

/// Whether the server at `addr` completes a verified TLS handshake for `target`: its chain
/// verified for the host name against the row's roots of that channel, presenting the PGO node
/// certificate on the back channel. Returns the protocol version and what was verified.
async fn accepts_tls(
    addr: SocketAddr,
    target: &Target,
    trust: &Trust,
    timeout: Duration,
) -> Result<String, String> {
    let (roots, identity) = match target.channel {
        Channel::Front => (&trust.front_roots, None),
        Channel::Back => (&trust.back_roots, trust.identity.as_ref()),
    };
    let config: ClientConfig =
        crate::tls::client_config(roots, identity.map(|(_, leaf)| leaf.as_ref()))
            .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| format!("{} is not a server name: {e}", target.host))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {}", error_chain(&e)))?;
        let version = stream.get_ref().1.protocol_version();
        if version == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut byte = [0u8; 1];
            match tokio::time::timeout(REFUSAL_WINDOW, stream.read(&mut byte)).await {
                Ok(Err(e)) => {
                    return Err(format!("refused after the handshake: {}", error_chain(&e)));
                }
                Ok(Ok(0)) => return Err("closed the connection after the handshake".into()),
                _ => {}
            }
        }
        Ok(version)
    };
    let version = tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no handshake within {} ms", timeout.as_millis())))?;
    let version = match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    };
    Ok(match (target.channel, identity) {
        (Channel::Front, _) => format!("{version}, chain verified (front channel)"),
        (Channel::Back, Some((host, _))) => {
            format!("{version}, chain verified, client certificate of {host} accepted")
        }
        (Channel::Back, None) => format!("{version}, chain verified (no client certificate)"),
    })
}

/// The terminal table: checks down, rows across, then the details of every check that warns or
/// fails, then the verdict.
pub fn render(report: &PreflightReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "koppeltest preflight: {} ({} rows, {:.1} s)\n",
        report.matrix,
        report.rows.len(),
        report.elapsed_ms as f64 / 1000.0
    );
    let first = CHECKS.iter().map(|c| c.len()).max().unwrap_or(0).max(5);
    let cell = |r: &RowReport, name: &str| -> String {
        let Some(c) = r.checks.iter().find(|c| c.name == name) else {
            return "-".to_string();
        };
        match (name, r.days_to_expiry) {
            ("certificate.expiry", Some(days)) if c.status != Status::Skip => {
                format!("{} {days}d", c.status.label())
            }
            _ => c.status.label().to_string(),
        }
    };
    let widths: Vec<usize> = report
        .rows
        .iter()
        .map(|r| {
            CHECKS
                .iter()
                .map(|n| cell(r, n).len())
                .chain([r.row.len()])
                .max()
                .unwrap_or(4)
        })
        .collect();
    let mut header = format!("{:first$}", "check");
    for (r, w) in report.rows.iter().zip(&widths) {
        let _ = write!(header, "  {:w$}", r.row);
    }
    let _ = writeln!(out, "{}", header.trim_end());
    for name in CHECKS {
        let mut line = format!("{name:first$}");
        for (r, w) in report.rows.iter().zip(&widths) {
            let _ = write!(line, "  {:w$}", cell(r, name));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let notes: Vec<String> = report
        .rows
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                // A skip is explained by the failure it follows; JSON keeps its detail.
                .filter(|c| matches!(c.status, Status::Warn | Status::Fail))
                .map(move |c| format!("  {} {} {}: {}", r.row, c.name, c.status.label(), c.detail))
        })
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    out.push('\n');
    let failing: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.row.as_str())
        .collect();
    if failing.is_empty() {
        let _ = writeln!(
            out,
            "ready: every row can be run (exit {})",
            report.exit_code
        );
    } else {
        let _ = writeln!(
            out,
            "not ready: {} cannot be run until the failing checks pass (exit {})",
            failing.join(", "),
            report.exit_code
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Broken, Pki};

    fn default_rows() -> (crate::matrix::Matrix, Vec<PreparedRow>) {
        let (matrix, text) = crate::matrix::Matrix::embedded_default().unwrap();
        let scenarios = crate::scenario::embedded().unwrap();
        let rows = matrix
            .prepare(
                std::path::Path::new("default.toml"),
                &text,
                std::path::Path::new("."),
                &scenarios,
            )
            .unwrap();
        (matrix, rows)
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn the_default_rows_pass_every_list_check() {
        let (matrix, rows) = default_rows();
        for row in &rows {
            let checks = list_checks(row, &matrix.columns, None);
            assert_eq!(checks.len(), 6);
            for c in &checks {
                assert_eq!(
                    c.status,
                    Status::Ok,
                    "{}: {} {}",
                    row.row.id,
                    c.name,
                    c.detail
                );
            }
        }
    }

    #[test]
    fn each_list_check_can_fail() {
        let (matrix, rows) = default_rows();
        let mut row = rows[0].clone();
        row.row.practice = "DeWaard.huisartspraktijk.utrecht@medmij".into();
        let checks = list_checks(&row, &matrix.columns, Some("not on the ZAL"));
        assert_eq!(status(&checks, "zal.listed"), Status::Fail);
        assert!(
            checks[0].detail.contains("names are compared exactly"),
            "{}",
            checks[0].detail
        );
        assert_eq!(status(&checks, "zal.service-49"), Status::Skip);
        assert_eq!(status(&checks, "whitelist.endpoints"), Status::Skip);
        assert_eq!(status(&checks, "zal.naming"), Status::Warn);

        let mut row = rows[0].clone();
        row.row.interfaceversie = Some("2.0.0".into());
        row.row.zal_release = Some(2);
        let checks = list_checks(&row, &matrix.columns, None);
        let release = checks.iter().find(|c| c.name == "zal.release").unwrap();
        assert_eq!(release.status, Status::Fail);
        assert!(release.detail.contains("2.0.0") && release.detail.contains("release 2"));

        let mut row = rows[0].clone();
        row.endpoints.token = "https://api.elsewhere.test/oauth/token".into();
        let checks = list_checks(&row, &matrix.columns, None);
        let wl = checks
            .iter()
            .find(|c| c.name == "whitelist.endpoints")
            .unwrap();
        assert_eq!(wl.status, Status::Fail);
        assert!(
            wl.detail.contains("api.elsewhere.test (token)"),
            "{}",
            wl.detail
        );

        let mut columns = matrix.columns.clone();
        columns[1].hostname = "medmij.pgo-onbekend.koppeltest.test".into();
        let checks = list_checks(&rows[0], &columns, None);
        let ocl = checks.iter().find(|c| c.name == "ocl.columns").unwrap();
        assert_eq!(ocl.status, Status::Fail);
        assert!(ocl.detail.contains("pgo-onbekend"), "{}", ocl.detail);
    }

    #[test]
    fn expiry_fails_expired_and_future_chains_and_warns_below_the_threshold() {
        let pki = Pki::generate().unwrap();
        let host = "api.conform.dva.koppeltest.test";
        let der = |leaf: &crate::pki::Leaf| -> Vec<Vec<u8>> {
            leaf.chain.iter().map(|c| c.to_vec()).collect()
        };
        let now = now_unix();
        let good = pki.leaf(Channel::Back, host).unwrap();
        assert_eq!(judge_expiry(&der(&good), now, 60).0, Status::Ok);
        let soon = pki
            .broken(Channel::Back, host, Broken::ExpiresIn(20))
            .unwrap();
        let (s, detail, days) = judge_expiry(&der(&soon), now, 60);
        assert_eq!(
            (s, days.map(|d| (19..=20).contains(&d))),
            (Status::Warn, Some(true)),
            "{detail}"
        );
        assert_eq!(judge_expiry(&der(&soon), now, 10).0, Status::Ok);
        let expired = pki.broken(Channel::Back, host, Broken::Expired).unwrap();
        let (s, detail, _) = judge_expiry(&der(&expired), now, 60);
        assert_eq!(s, Status::Fail);
        assert!(detail.contains("expired"), "{detail}");
        let future = pki
            .broken(Channel::Back, host, Broken::NotYetValid)
            .unwrap();
        assert_eq!(judge_expiry(&der(&future), now, 60).0, Status::Fail);
        assert_eq!(judge_expiry(&[b"junk".to_vec()], now, 60).0, Status::Fail);
    }

    #[test]
    fn endpoints_on_one_host_are_probed_once_per_channel() {
        let (_, rows) = default_rows();
        let t = targets(&rows[0].endpoints);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].channel, Channel::Front);
        assert_eq!(t[1].serves, vec!["token", "resource"]);
        assert_eq!(t[1].port, 443);
    }
}
