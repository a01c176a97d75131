//! The matrix file: HIS rows × PGO columns, a typed TOML contract like the scenarios.
//!
//! A row is a HIS as a coalition knows it: the practice (ZAL name) it is reached through, the
//! lists that publish it, the DVA target (the built-in simulated DVA with its quirks), browser
//! selectors for its pages, and the known deviations with a reason each. A column is a PGO
//! profile ([`PgoProfile`]). [`Matrix::prepare`] resolves everything a run needs up front, so a
//! bad matrix fails before any traffic with file, line and field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::checks::LabWindowPolicy;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dva::Quirks;
use crate::lists::{self, Endpoints, Ocl, Whitelist, Zal};
use crate::pgo::{PgoProfile, Selectors};
use crate::pki::Leaf;
use crate::saml::{EntityMetadata, Loa};
use crate::scenario::Scenario;
use crate::tls::HostMap;
use rustls_pki_types::CertificateDer;

/// The matrix `koppeltest run` uses when given none.
pub const EMBEDDED_DEFAULT: (&str, &str) = (
    "fixtures/matrix/default.toml",
    include_str!("../fixtures/matrix/default.toml"),
);

const EMBEDDED_LISTS: &[(&str, &str)] = &[
    (
        "MedMij_Zorgaanbiederslijst.xml",
        include_str!("../fixtures/lists/MedMij_Zorgaanbiederslijst.xml"),
    ),
    (
        "MedMij_Zorgaanbiederslijst_release2.xml",
        include_str!("../fixtures/lists/MedMij_Zorgaanbiederslijst_release2.xml"),
    ),
    (
        "MedMij_OAuthclientlist.xml",
        include_str!("../fixtures/lists/MedMij_OAuthclientlist.xml"),
    ),
    (
        "MedMij_Whitelist.xml",
        include_str!("../fixtures/lists/MedMij_Whitelist.xml"),
    ),
    (
        "MedMij_Whitelist_v2.xml",
        include_str!("../fixtures/lists/MedMij_Whitelist_v2.xml"),
    ),
];

/// The gegevensdienst every row is tested for.
pub const GEGEVENSDIENST: &str = "49";

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The test person the mock TVS logs in.
    #[serde(default)]
    pub tvs: TvsSettings,
    /// Response-time budgets (MedMij: token 10 s, resource 60 s).
    #[serde(default)]
    pub budgets: crate::checks::Budgets,
    /// Who keeps lab results older than 14 months out of the PGO. [U] MedMij does not say
    /// whether the DVA must apply the window when the PGO sends no `date=ge…`; the default is
    /// that it must.
    #[serde(default)]
    pub lab_window: LabWindowPolicy,
    /// The longest a `wait` step may really wait (against an external DVA; against a simulated
    /// one it advances the clock and costs nothing); longer waits are skipped with the reason.
    #[serde(default = "max_wait_s")]
    pub max_wait_s: u64,
    /// How TLS and certificates are judged.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Whether and how a recent soak counts for the cells (`koppeltest soak`).
    #[serde(default)]
    pub soak: SoakSettings,
    /// How the launch decision (`koppeltest launch`) weighs what is not a conformance failure.
    #[serde(default)]
    pub launch: LaunchSettings,
    /// How long the mock PGO waits for a DVA.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How much the mock PGO takes from a DVA: bodies, pages, redirects.
    #[serde(default)]
    pub limits: Limits,
    /// How the PGO suite judges a PGO column of kind `external` (a real PGO).
    #[serde(default)]
    pub pgo_suite: PgoSuiteSettings,
    #[serde(rename = "his")]
    pub rows: Vec<HisRow>,
    #[serde(rename = "pgo")]
    pub columns: Vec<PgoProfile>,
}

/// The matrix's `[soak]` table.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoakSettings {
    /// A run shows the newest soak of the same matrix (`koppeltest soak`, same text) per cell
    /// when it finished within this many days; otherwise "reliable operation not demonstrated".
    /// [U] MedMij names no age; 30 days is a default for a coalition's monthly review.
    #[serde(default = "max_age_days")]
    pub max_age_days: u32,
}

fn max_age_days() -> u32 {
    30
}

impl Default for SoakSettings {
    fn default() -> Self {
        SoakSettings {
            max_age_days: max_age_days(),
        }
    }
}

/// The matrix's `[launch]` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchSettings {
    /// What a cell without demonstrated reliable operation (no recent soak, or one that missed
    /// MedMij's figures) gets: `condition` (go with conditions, the default) or `blocker`
    /// (no-go). [U] MedMij asks for availability but says nothing of launch decisions.
    #[serde(default)]
    pub unreliable: UnreliablePolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnreliablePolicy {
    #[default]
    Condition,
    Blocker,
}

/// The matrix's `[pgo_suite]` table: where the PGO suite serves its lists and DVAs, and how
/// long it waits for a real PGO (a column with `kind = "external"`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgoSuiteSettings {
    /// The address every listener of the suite binds (default 127.0.0.1; 0.0.0.0 to let a PGO
    /// on another machine in).
    #[serde(default = "suite_listen")]
    pub listen: String,
    /// The list server's port (default 0: any free port, printed when the suite starts). Fix
    /// it so the PGO's configuration can name the lists.
    #[serde(default)]
    pub lists_port: u16,
    /// The one port of every front-channel host (the practices' authorization pages, the mock
    /// TVS's login): the ZAL's front-channel URIs carry no port, so a browser goes to 443.
    /// Set 443 where koppeltest may bind it, or forward 443 to this port (default 0: any free
    /// port, in `koppeltest-hosts.json`). Back-channel URIs name their own ports.
    #[serde(default)]
    pub front_port: u16,
    /// How long the run waits for the PGO to collect from every listed practice, in seconds
    /// (default 900). A practice it never visits ends its scenario as `skip`.
    #[serde(default = "suite_wait_s")]
    pub wait_s: u64,
    /// A practice counts as done when the PGO has sent nothing there for this long, in ms
    /// (default 30000: a person at the mock TVS's login sends the DVA nothing meanwhile; test
    /// automation can lower it). [U] MedMij says nothing about it.
    #[serde(default = "suite_quiet_ms")]
    pub quiet_ms: u64,
    /// How late the slow answer of the `slow-answer` scenario comes, in ms (default 3000:
    /// well inside MedMij's 60 s).
    #[serde(default = "suite_slow_answer_ms")]
    pub slow_answer_ms: u64,
}

fn suite_listen() -> String {
    "127.0.0.1".to_string()
}

fn suite_wait_s() -> u64 {
    900
}

fn suite_quiet_ms() -> u64 {
    30_000
}

fn suite_slow_answer_ms() -> u64 {
    3000
}

impl Default for PgoSuiteSettings {
    fn default() -> Self {
        PgoSuiteSettings {
            listen: suite_listen(),
            lists_port: 0,
            front_port: 0,
            wait_s: suite_wait_s(),
            quiet_ms: suite_quiet_ms(),
            slow_answer_ms: suite_slow_answer_ms(),
        }
    }
}

/// The matrix's `[tls]` table.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The NCSC TLS guidelines edition that fails a run: "2021" (v2.1, the one MedMij cites;
    /// default) or "2025" (2025-05). The other edition's verdict is reported alongside.
    #[serde(default)]
    pub edition: crate::checks::Edition,
    /// Warn when any certificate in an endpoint's chain expires in fewer days than this.
    #[serde(default = "expiry_warning_days")]
    pub expiry_warning_days: u32,
}

fn expiry_warning_days() -> u32 {
    60
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            edition: crate::checks::Edition::default(),
            expiry_warning_days: expiry_warning_days(),
        }
    }
}

/// The matrix's `[limits]` table: the bounds a vendor may need to raise for a large record or a
/// long login. Their defaults, and every bound that is not settable, are in [`crate::limits`].
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest response body the mock PGO reads, in MiB (default 16); a larger one ends the
    /// step as `error`.
    #[serde(default = "max_body_mib")]
    pub max_body_mib: u64,
    /// The most pages one search is followed through (default 1000).
    #[serde(default = "max_pages")]
    pub max_pages: usize,
    /// The most front-channel hops (redirects, form posts) from the authorization request to
    /// the redirect URI (default 25).
    #[serde(default = "max_redirects")]
    pub max_redirects: usize,
    /// The longest one scenario step may take, in seconds (default 90).
    #[serde(default = "step_timeout_s")]
    pub step_timeout_s: u64,
}

fn max_body_mib() -> u64 {
    crate::limits::MAX_BODY_MIB
}

fn max_pages() -> usize {
    crate::limits::MAX_PAGES
}

fn max_redirects() -> usize {
    crate::limits::MAX_REDIRECTS
}

fn step_timeout_s() -> u64 {
    crate::limits::STEP_TIMEOUT_S
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_mib: max_body_mib(),
            max_pages: max_pages(),
            max_redirects: max_redirects(),
            step_timeout_s: step_timeout_s(),
        }
    }
}

impl Limits {
    /// The largest body in bytes.
    pub fn max_body(&self) -> usize {
        usize::try_from(self.max_body_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

    pub fn step_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.step_timeout_s)
    }
}

/// The matrix's `timeouts` table.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// How long one HTTP exchange with the DVA may take, connect to last body byte, in ms
    /// (default 30,000; at least 500). A DVA that takes longer ends the step as `error`.
    #[serde(default = "request_ms")]
    pub request_ms: u64,
}

fn request_ms() -> u64 {
    crate::limits::REQUEST_TIMEOUT_MS
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request_ms: request_ms(),
        }
    }
}

impl Timeouts {
    /// The request time-out as a duration.
    pub fn request(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_ms)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TvsSettings {
    /// A test BSN (9999xxxxx with a valid 11-check).
    #[serde(default = "default_bsn")]
    pub bsn: String,
    #[serde(default = "default_loa")]
    pub loa: Loa,
}

impl Default for TvsSettings {
    fn default() -> Self {
        TvsSettings {
            bsn: default_bsn(),
            loa: default_loa(),
        }
    }
}

fn max_wait_s() -> u64 {
    15
}

fn default_bsn() -> String {
    "999911533".into()
}

fn default_loa() -> Loa {
    Loa::Substantial
}

fn default_min_loa() -> Loa {
    Loa::Substantial
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HisRow {
    pub id: String,
    /// The HIS name, as a coalition knows it.
    pub name: String,
    /// The DVA that serves this HIS.
    pub dva: String,
    /// The zorgaanbieder on the ZAL (`…@medmij`), a test practice.
    pub practice: String,
    /// `embedded:<file>` or a path relative to the matrix file.
    pub zal: String,
    pub ocl: String,
    pub whitelist: String,
    /// The ZAL release (2 or 3) the practice is published in, as the row claims it; `preflight`
    /// compares it with the list. Unset: nothing is claimed, and nothing compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zal_release: Option<u8>,
    /// The InterfaceversieId under which the practice publishes gegevensdienst 49 (release 3
    /// only), as the row claims it; `preflight` compares it with the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaceversie: Option<String>,
    pub target: DvaTarget,
    /// The lowest level of assurance this row's DVA must accept (and asks the TVS for):
    /// substantieel by default, as GP care starts there; `high` where the Wet digitale overheid
    /// moves GP care to hoog. The simulated DVA is configured with it, the mock TVS logs people
    /// in at no lower level unless a scenario says so, and the judge decides every level check
    /// against it.
    #[serde(default = "default_min_loa")]
    pub min_loa: Loa,
    /// Form selectors for this DVA's landing and consent pages (defaults fit the simulated DVA).
    #[serde(default)]
    pub selectors: Selectors,
    #[serde(default, rename = "known_deviation")]
    pub known_deviations: Vec<KnownDeviation>,
    /// Blockers of the launch decision accepted until a date (`[[his.waiver]]`). A known
    /// deviation never unblocks a privacy or security failure; only a waiver does, and only
    /// until it expires.
    #[serde(default, rename = "waiver", skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<Waiver>,
}

/// What answers for this row.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DvaTarget {
    /// koppeltest's built-in simulated DVA, on the hosts the row's ZAL names.
    Simulated {
        /// The DV's eID entity index; 9000–9999 are reserved for tests.
        entity_index: u16,
        #[serde(default)]
        quirks: Quirks,
        #[serde(default)]
        lifetimes: LifetimeSettings,
        /// Search results with more matches than this come in pages linked by `next`. [U] the
        /// IG names no page size; 100 is a common server default.
        #[serde(default = "page_size")]
        page_size: usize,
        /// Picks which answers the availability quirks (`token-slow-1-in-50`,
        /// `resource-unavailable-1-in-20`) spoil: the same seed spoils the same answer numbers.
        #[serde(default = "seed")]
        seed: u64,
        /// How late `token-slow-1-in-50`'s slow answers come: 11 s by default, just past
        /// core.tknint.206's 10 s. Tests that lower the matrix's budgets lower this with them.
        #[serde(default = "slow_answer_ms")]
        slow_answer_ms: u64,
    },
    /// A real DVA (a vendor's test environment), reached on the hosts the row's ZAL names. The
    /// mock TVS listens on fixed addresses so the DVA can be registered with it; the DVA must
    /// trust koppeltest's test PKI for the TVS (`koppeltest pki init`).
    External {
        /// PEM bundle of the CAs the DVA's front-channel certificate chains to.
        front_roots: String,
        /// PEM bundle of the CAs the DVA's back-channel certificates chain to (also used to
        /// verify its client certificate at the TVS's artifact resolution service).
        back_roots: String,
        /// Per PGO column id: the PGO node's client certificate chain and key (PEM), on its
        /// OCL hostname.
        client_certificates: BTreeMap<String, ClientCertificate>,
        /// Host name → `ip:port` overrides, when the DVA's hosts are not in DNS.
        #[serde(default)]
        resolve: BTreeMap<String, String>,
        tvs: ExternalTvs,
        /// The vendor's stated code lifetime (access tokens announce theirs in expires_in).
        #[serde(default)]
        lifetimes: LifetimeSettings,
    },
}

/// Lifetimes of a row's codes and tokens. For a simulated DVA they configure it, and `wait` steps
/// advance its clock past them (no real wait, whatever the lifetime); for an external one
/// `code_s` states what the vendor says, and `wait` steps really wait that long.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LifetimeSettings {
    #[serde(default = "code_s")]
    pub code_s: u64,
    /// Simulated DVAs only: the access token lifetime (`expires_in`).
    #[serde(default = "access_token_s")]
    pub access_token_s: u64,
}

fn seed() -> u64 {
    1
}

fn slow_answer_ms() -> u64 {
    11_000
}

/// The simulated DVA's page size unless a row says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 100;

fn page_size() -> usize {
    DEFAULT_PAGE_SIZE
}

fn code_s() -> u64 {
    60
}

fn access_token_s() -> u64 {
    900
}

impl Default for LifetimeSettings {
    fn default() -> Self {
        LifetimeSettings {
            code_s: code_s(),
            access_token_s: access_token_s(),
        }
    }
}

impl DvaTarget {
    pub fn lifetimes(&self) -> LifetimeSettings {
        match self {
            DvaTarget::Simulated { lifetimes, .. } | DvaTarget::External { lifetimes, .. } => {
                *lifetimes
            }
        }
    }
}

/// A PGO client identity for an external DVA.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    pub cert: String,
    pub key: String,
}

/// Where the mock TVS listens for an external DVA, and the metadata the DVA registered.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalTvs {
    /// The login page's public `host[:port]`, as the TVS metadata publishes it.
    pub front_host: String,
    /// The artifact resolution service's public `host[:port]`; the DVA must reach it.
    pub back_host: String,
    /// Listening address of the login page, e.g. `0.0.0.0:9443`.
    pub front_listen: String,
    /// Listening address of the artifact resolution service.
    pub back_listen: String,
    /// The DVA's SAML SP metadata file.
    pub sp_metadata: String,
}

/// The resolved parts of an external target.
#[derive(Debug, Clone)]
pub struct ExternalResolved {
    pub front_roots: Vec<CertificateDer<'static>>,
    pub back_roots: Vec<CertificateDer<'static>>,
    pub identities: BTreeMap<String, Arc<Leaf>>,
    pub hosts: HostMap,
    pub tvs: ExternalTvs,
    pub sp_metadata: EntityMetadata,
}

/// An expected failure, with the reason it is accepted.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownDeviation {
    pub scenario: String,
    pub reason: String,
}

/// A blocker accepted for a while: a privacy or security failure (or a security rule left
/// unexercised) of one scenario, or of one requirement in any scenario, in this row's cells.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The scenario whose blocker it covers; set this or `requirement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The catalogue requirement whose blockers it covers, in any scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// Only the cell with this PGO column; every cell of the row when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Why the coalition accepts the risk for now.
    pub reason: String,
    /// Who accepted it and answers for it.
    pub owner: String,
    /// The last day it holds, `YYYY-MM-DD`; from the day after, the blocker blocks again.
    pub expires: String,
}

impl Waiver {
    /// The last day it holds.
    pub fn expiry(&self) -> Option<time::Date> {
        parse_date(&self.expires)
    }
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<time::Date> {
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}

/// A row with its lists resolved.
#[derive(Debug, Clone)]
pub struct PreparedRow {
    pub row: HisRow,
    pub zal: Arc<Zal>,
    pub ocl: Arc<Ocl>,
    pub whitelist: Arc<Whitelist>,
    /// The ZAL's endpoints for the practice and gegevensdienst 49. Always resolved after
    /// [`Matrix::prepare`]; after [`Matrix::prepare_unresolved`] empty where the practice or
    /// its service is not on the ZAL (the preflight reports why).
    pub endpoints: Endpoints,
    /// Set for external targets.
    pub external: Option<Arc<ExternalResolved>>,
    /// The simulated DVA's answer counts, shared by every server the row starts, so the
    /// availability quirks spoil a share of a whole run's or soak's answers.
    pub availability: Arc<crate::dva::quirks::Availability>,
}

fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map_or(1, |o| text[..o].matches('\n').count() + 1)
}

impl Matrix {
    pub fn parse(path: &Path, text: &str) -> Result<Matrix, MatrixError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = crate::scenario::toml_error_position(text, &e);
            MatrixError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })
    }

    pub fn load(path: &Path) -> Result<(Matrix, String), MatrixError> {
        let text = std::fs::read_to_string(path).map_err(|source| MatrixError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((Matrix::parse(path, &text)?, text))
    }

    pub fn embedded_default() -> Result<(Matrix, String), MatrixError> {
        let (path, text) = EMBEDDED_DEFAULT;
        Ok((Matrix::parse(Path::new(path), text)?, text.to_string()))
    }

    /// Semantic checks and list resolution. `base` is the folder relative list paths start at.
    /// A practice (or its gegevensdienst 49) that is not on the row's ZAL is an error here.
    pub fn prepare(
        &self,
        path: &Path,
        text: &str,
        base: &Path,
        scenarios: &[Scenario],
    ) -> Result<Vec<PreparedRow>, MatrixError> {
        let rows = self.prepare_unresolved(path, text, base, scenarios)?;
        let mut prepared = Vec::with_capacity(rows.len());
        for (row, unresolved) in rows {
            if let Some(e) = unresolved {
                return Err(MatrixError::Invalid {
                    path: path.to_path_buf(),
                    line: line_of(text, &row.row.practice),
                    field: "practice".to_string(),
                    message: e.to_string(),
                });
            }
            prepared.push(row);
        }
        Ok(prepared)
    }

    /// Every row's `[[his.waiver]]`: a scenario of `known` (or of the PGO suite, as reports name
    /// it: `pgo.<scenario>`) or a catalogued
    /// requirement (one of
    /// the two), a column of the matrix, a reason, an owner and a `YYYY-MM-DD` expiry.
    pub fn check_waivers(
        &self,
        path: &Path,
        text: &str,
        known: &std::collections::BTreeSet<&str>,
    ) -> Result<(), MatrixError> {
        let invalid = |needle: &str, field: &str, message: String| MatrixError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, needle),
            field: field.to_string(),
            message,
        };
        for row in &self.rows {
            for w in &row.waivers {
                let at = format!("\"{}\"", w.expires);
                match (&w.scenario, &w.requirement) {
                    (None, None) | (Some(_), Some(_)) => {
                        return Err(invalid(
                            &at,
                            "waiver",
                            "a waiver names either a `scenario` or a `requirement`".into(),
                        ));
                    }
                    (Some(id), None)
                        if !known.contains(id.as_str())
                            && !crate::bench::suite()
                                .unwrap_or_default()
                                .iter()
                                .any(|s| &crate::bench::report_id(&s.id) == id) =>
                    {
                        return Err(invalid(
                            &format!("\"{id}\""),
                            "waiver.scenario",
                            format!("no scenario with id {id:?}"),
                        ));
                    }
                    (None, Some(id)) if crate::requirements::rule(id).is_none() => {
                        return Err(invalid(
                            &format!("\"{id}\""),
                            "waiver.requirement",
                            format!(
                                "no requirement {id:?} in the catalogue (koppeltest requirements)"
                            ),
                        ));
                    }
                    _ => {}
                }
                if let Some(c) = &w.column
                    && !self.columns.iter().any(|p| &p.id == c)
                {
                    return Err(invalid(
                        &format!("\"{c}\""),
                        "waiver.column",
                        format!("no [[pgo]] column with id {c:?}"),
                    ));
                }
                for (field, value) in [("waiver.reason", &w.reason), ("waiver.owner", &w.owner)] {
                    if value.trim().is_empty() {
                        return Err(invalid(
                            &at,
                            field,
                            "a waiver needs a reason and an owner".into(),
                        ));
                    }
                }
                if w.expiry().is_none() {
                    return Err(invalid(
                        &at,
                        "waiver.expires",
                        format!("{:?} is not a date (YYYY-MM-DD, quoted)", w.expires),
                    ));
                }
            }
        }
        Ok(())
    }

    /// As [`Matrix::prepare`], except that a practice the row's ZAL cannot resolve to endpoints
    /// is returned with the reason instead of failing the matrix: for `preflight`, which reports
    /// exactly that as a failed check. Such a row's endpoints are empty.
    pub fn prepare_unresolved(
        &self,
        path: &Path,
        text: &str,
        base: &Path,
        scenarios: &[Scenario],
    ) -> Result<Vec<(PreparedRow, Option<lists::ListError>)>, MatrixError> {
        let invalid = |needle: &str, field: &str, message: String| MatrixError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, needle),
            field: field.to_string(),
            message,
        };
        if self.rows.is_empty() || self.columns.is_empty() {
            return Err(invalid(
                "",
                "his/pgo",
                "a matrix needs at least one [[his]] row and one [[pgo]] column".into(),
            ));
        }
        if !crate::ids::is_test_bsn(&self.tvs.bsn) {
            return Err(invalid(
                &self.tvs.bsn,
                "tvs.bsn",
                "not a test BSN (9999xxxxx with a valid 11-check)".into(),
            ));
        }
        if self.timeouts.request_ms < crate::limits::MIN_REQUEST_TIMEOUT_MS {
            return Err(invalid(
                "request_ms",
                "timeouts.request_ms",
                format!(
                    "at least {} ms: a shorter time-out reads ordinary latency as a hostile DVA",
                    crate::limits::MIN_REQUEST_TIMEOUT_MS
                ),
            ));
        }
        let l = &self.limits;
        for (field, value) in [
            ("limits.max_body_mib", l.max_body_mib),
            ("limits.max_pages", l.max_pages as u64),
            ("limits.max_redirects", l.max_redirects as u64),
            ("limits.step_timeout_s", l.step_timeout_s),
        ] {
            if value == 0 {
                let key = field.rsplit('.').next().unwrap_or(field);
                return Err(invalid(key, field, "must be at least 1".into()));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for id in self
            .rows
            .iter()
            .map(|r| &r.id)
            .chain(self.columns.iter().map(|c| &c.id))
        {
            if !ids.insert(id) {
                return Err(invalid(
                    &format!("\"{id}\""),
                    "id",
                    format!("id {id:?} is used twice"),
                ));
            }
        }
        // Ids name folders and files of the run (cells/<row>/<column>/…, snapshots): two that
        // would share one, on any file system, or a name too long for one, are refused.
        let named = [
            (
                "his.id",
                self.rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ),
            (
                "pgo.id",
                self.columns.iter().map(|c| c.id.as_str()).collect(),
            ),
            (
                "scenario id",
                scenarios.iter().map(|s| s.id.as_str()).collect(),
            ),
        ];
        for (field, ids) in named {
            let mut files: std::collections::BTreeMap<String, &str> = Default::default();
            for id in ids {
                let file = crate::snapshot::component(id).to_lowercase();
                if id.len() > crate::limits::MAX_ID_BYTES {
                    return Err(invalid(
                        &format!("\"{id}\""),
                        field,
                        format!(
                            "{id:?} is longer than {} bytes, too long for a file name",
                            crate::limits::MAX_ID_BYTES
                        ),
                    ));
                }
                if let Some(other) = files.insert(file, id) {
                    return Err(invalid(
                        &format!("\"{id}\""),
                        field,
                        format!(
                            "{id:?} and {other:?} would share one file name in the reports; rename one"
                        ),
                    ));
                }
            }
        }
        for c in &self.columns {
            let redirect_host = url::Url::parse(&c.redirect_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
            if redirect_host.as_deref() != Some(c.hostname.as_str()) {
                return Err(invalid(
                    &c.redirect_uri,
                    "redirect_uri",
                    format!("must be on the PGO's hostname {}", c.hostname),
                ));
            }
        }
        let known = crate::scenario::ids(scenarios);
        self.check_waivers(path, text, &known)?;
        let mut prepared = Vec::new();
        for row in &self.rows {
            let selectors = &row.selectors;
            for (field, form) in [
                ("selectors.landing.form", &selectors.landing.form),
                ("selectors.consent.form", &selectors.consent.form),
                ("selectors.tvs_login.form", &selectors.tvs_login.form),
            ] {
                crate::pgo::browser::check_selector(form)
                    .map_err(|e| invalid(&format!("\"{form}\""), field, e.to_string()))?;
            }
            for d in &row.known_deviations {
                if !known.contains(d.scenario.as_str()) {
                    return Err(invalid(
                        &format!("\"{}\"", d.scenario),
                        "known_deviation.scenario",
                        format!("no scenario with id {:?}", d.scenario),
                    ));
                }
                if d.reason.trim().is_empty() {
                    return Err(invalid(
                        &format!("\"{}\"", d.scenario),
                        "known_deviation.reason",
                        "a known deviation needs a reason".into(),
                    ));
                }
            }
            // GP data starts at substantieel (brief §8): the basis and midden scenarios
            // expect a refusal on every row.
            if let Some(release) = row.zal_release {
                if !matches!(release, 2 | 3) {
                    return Err(invalid(
                        "zal_release",
                        "zal_release",
                        format!("ZAL release {release} does not exist; releases are 2 and 3"),
                    ));
                }
            }
            if row.min_loa < Loa::Substantial {
                return Err(invalid(
                    "min_loa",
                    "min_loa",
                    "GP care needs at least substantieel: \"substantial\" or \"high\"".into(),
                ));
            }
            let external = match &row.target {
                DvaTarget::Simulated { entity_index, .. } => {
                    if !(9000..=9999).contains(entity_index) {
                        return Err(invalid(
                            &format!("entity_index = {entity_index}"),
                            "target.entity_index",
                            "test entity indexes are 9000–9999".into(),
                        ));
                    }
                    None
                }
                DvaTarget::External {
                    front_roots,
                    back_roots,
                    client_certificates,
                    resolve,
                    tvs,
                    ..
                } => {
                    let read = |file: &str, field: &str| {
                        std::fs::read_to_string(base.join(file)).map_err(|e| {
                            invalid(
                                file,
                                field,
                                format!("read {}: {e}", base.join(file).display()),
                            )
                        })
                    };
                    let roots = |file: &str, field: &str| -> Result<Vec<CertificateDer<'static>>, MatrixError> {
                        let certs = crate::pki::certs_from_pem(&read(file, field)?);
                        if certs.is_empty() {
                            return Err(invalid(file, field, "no PEM certificate in the file".into()));
                        }
                        Ok(certs)
                    };
                    let mut identities = BTreeMap::new();
                    for column in &self.columns {
                        let Some(cc) = client_certificates.get(&column.id) else {
                            return Err(invalid(
                                "client_certificates",
                                "target.client_certificates",
                                format!("no client certificate for PGO column {:?}", column.id),
                            ));
                        };
                        let leaf = Leaf::from_pem(&read(&cc.cert, "cert")?, &read(&cc.key, "key")?)
                            .ok_or_else(|| {
                                invalid(
                                    &cc.cert,
                                    "cert",
                                    "not a PEM certificate chain with a PKCS#8 key".into(),
                                )
                            })?;
                        identities.insert(column.id.clone(), Arc::new(leaf));
                    }
                    let mut hosts = HostMap::new();
                    for (host, addr) in resolve {
                        let addr = addr.parse().map_err(|_| {
                            invalid(addr, "target.resolve", format!("{addr:?} is not ip:port"))
                        })?;
                        hosts.insert(host.clone(), addr);
                    }
                    for (field, listen) in [
                        ("tvs.front_listen", &tvs.front_listen),
                        ("tvs.back_listen", &tvs.back_listen),
                    ] {
                        listen.parse::<std::net::SocketAddr>().map_err(|_| {
                            invalid(listen, field, format!("{listen:?} is not ip:port"))
                        })?;
                    }
                    let sp_metadata =
                        crate::saml::parse_metadata(&read(&tvs.sp_metadata, "tvs.sp_metadata")?)
                            .map_err(|e| {
                                invalid(&tvs.sp_metadata, "tvs.sp_metadata", e.to_string())
                            })?;
                    Some(Arc::new(ExternalResolved {
                        front_roots: roots(front_roots, "target.front_roots")?,
                        back_roots: roots(back_roots, "target.back_roots")?,
                        identities,
                        hosts,
                        tvs: tvs.clone(),
                        sp_metadata,
                    }))
                }
            };
            let list = |source: &str, field: &str| -> Result<String, MatrixError> {
                read_list(source, base).map_err(|m| invalid(source, field, m))
            };
            let zal = lists::parse_zal(&list(&row.zal, "zal")?)
                .map_err(|e| invalid(&row.zal, "zal", e.to_string()))?;
            let ocl = lists::parse_ocl(&list(&row.ocl, "ocl")?)
                .map_err(|e| invalid(&row.ocl, "ocl", e.to_string()))?;
            let whitelist = lists::parse_whitelist(&list(&row.whitelist, "whitelist")?)
                .map_err(|e| invalid(&row.whitelist, "whitelist", e.to_string()))?;
            let (endpoints, unresolved) = match zal.resolve(&row.practice, GEGEVENSDIENST) {
                Ok(e) => (e, None),
                Err(e) => (
                    Endpoints {
                        authorization: String::new(),
                        token: String::new(),
                        resource: String::new(),
                    },
                    Some(e),
                ),
            };
            prepared.push((
                PreparedRow {
                    row: row.clone(),
                    zal: Arc::new(zal),
                    ocl: Arc::new(ocl),
                    whitelist: Arc::new(whitelist),
                    endpoints,
                    external,
                    availability: Arc::new(crate::dva::quirks::Availability::new(
                        match &row.target {
                            DvaTarget::Simulated { seed, .. } => *seed,
                            DvaTarget::External { .. } => 0,
                        },
                    )),
                },
                unresolved,
            ));
        }
        Ok(prepared)
    }
}

fn read_list(source: &str, base: &Path) -> Result<String, String> {
    if let Some(name) = source.strip_prefix("embedded:") {
        return EMBEDDED_LISTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| {
                format!(
                    "no embedded list {name:?}; embedded: {}",
                    EMBEDDED_LISTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
    }
    let p = base.join(source);
    std::fs::read_to_string(&p).map_err(|e| format!("read {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(text: &str) -> Result<Vec<PreparedRow>, MatrixError> {
        let scenarios = crate::scenario::embedded().unwrap();
        let p = Path::new("m.toml");
        Matrix::parse(p, text)?.prepare(p, text, Path::new("."), &scenarios)
    }

    #[test]
    fn the_embedded_default_prepares() {
        let rows = prepare(EMBEDDED_DEFAULT.1).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].zal.release, 2);
        assert_eq!(rows[2].whitelist.shape, crate::lists::WhitelistShape::Text);
    }

    #[test]
    fn errors_name_line_and_field() {
        let bad = EMBEDDED_DEFAULT.1.replacen(
            "scenario = \"token.code-replay\"",
            "scenario = \"token.code-replya\"",
            1,
        );
        let e = prepare(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("m.toml:")
                && e.contains("known_deviation.scenario")
                && e.contains("code-replya"),
            "{e}"
        );
        let bad = EMBEDDED_DEFAULT
            .1
            .replacen("entity_index = 9001", "entity_index = 42", 1);
        assert!(prepare(&bad).unwrap_err().to_string().contains("9000–9999"));
        let bad = EMBEDDED_DEFAULT
            .1
            .replacen("quirks = []", "quirks = [\"no-such-quirk\"]", 1);
        let e = prepare(&bad).unwrap_err().to_string();
        assert!(e.contains("no-such-quirk"), "{e}");
        let bad = EMBEDDED_DEFAULT
            .1
            .replacen("hoekstra@medmij", "hoekstra2@medmij", 1);
        assert!(
            prepare(&bad)
                .unwrap_err()
                .to_string()
                .contains("not on the ZAL")
        );
        // A form selector that is not CSS is refused at load time, not met as "no form" later.
        let bad = EMBEDDED_DEFAULT.1.replacen(
            "target = { kind = \"simulated\", entity_index = 9001",
            "selectors.consent = { form = \"form:hover\", submit = \"decision=approve\" }\n\
             target = { kind = \"simulated\", entity_index = 9001",
            1,
        );
        let e = prepare(&bad).unwrap_err().to_string();
        assert!(
            e.contains("selectors.consent.form") && e.contains("form:hover"),
            "{e}"
        );
        // A row's minimum level of assurance: hoog is fine, midden is no level for GP data.
        let row = "target = { kind = \"simulated\", entity_index = 9001";
        let high = EMBEDDED_DEFAULT
            .1
            .replacen(row, &format!("min_loa = \"high\"\n{row}"), 1);
        let rows = prepare(&high).unwrap();
        assert_eq!(rows[0].row.min_loa, Loa::High);
        assert_eq!(rows[1].row.min_loa, Loa::Substantial);
        let low = EMBEDDED_DEFAULT
            .1
            .replacen(row, &format!("min_loa = \"low\"\n{row}"), 1);
        let e = prepare(&low).unwrap_err().to_string();
        assert!(
            e.contains("field `min_loa`") && e.contains("substantieel"),
            "{e}"
        );
    }
}
