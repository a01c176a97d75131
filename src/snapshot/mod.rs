//! Response snapshots and drift: what a DVA answers, kept per cell and scenario, and compared
//! run by run.
//!
//! Every finished scenario's exchanges are normalised ([`normalise`]) into a snapshot, written
//! in insta's `.snap` format (a `---` header, then the content) to the run folder
//! (`reports/<run>/snapshots/<row>/<column>/<scenario>.snap`) and compared with the accepted
//! one under `<dir>/<matrix>/<row>/<column>/<scenario>.snap`. Drift is its own dimension next
//! to the verdict: **unchanged**, **changed** (with a unified diff), **new**, or **missing** (an
//! accepted snapshot this run did not produce). New and changed snapshots are written next to
//! the accepted ones as pending `.snap.new` files, never over them; `koppeltest snapshots
//! accept|reject|review` decides. Under `CI=true` nothing is written unless asked, as insta
//! does.
//!
//! The header carries the SHA-256 of the content, so a truncated or damaged snapshot file is
//! refused with its path and line instead of showing up as drift.

pub mod normalise;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::report::ScenarioReport;

pub use normalise::Reference;

/// How a run uses snapshots.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Neither compare nor write snapshots.
    Off,
    /// Compare and report drift; drift does not change the exit code.
    Check,
    /// Compare and report drift; any drift (changed, new or missing) exits 1.
    Strict,
}

/// Whether a run writes pending `.snap.new` files for new and changed snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PendingPolicy {
    /// Write them, except under `CI=true`.
    Auto,
    Always,
    Never,
}

impl PendingPolicy {
    /// Whether pending files are written, given whether `CI` is set to something true.
    pub fn writes(self, ci: bool) -> bool {
        match self {
            PendingPolicy::Auto => !ci,
            PendingPolicy::Always => true,
            PendingPolicy::Never => false,
        }
    }
}

/// Whether the environment says this is CI (`CI` set and not `false`/`0`), as insta reads it.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftState {
    Unchanged,
    Changed,
    New,
    Missing,
}

impl DriftState {
    pub fn label(self) -> &'static str {
        match self {
            DriftState::Unchanged => "unchanged",
            DriftState::Changed => "changed",
            DriftState::New => "new",
            DriftState::Missing => "missing",
        }
    }
}

/// One scenario's snapshot against the accepted one.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Drift {
    pub state: DriftState,
    /// The snapshot's path below the matrix's snapshot folder (`<row>/<column>/<scenario>.snap`).
    pub snapshot: String,
    /// For `changed`: the unified diff from the accepted snapshot to this run's (bounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The run's snapshots in figures.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct SnapshotSummary {
    pub mode: Mode,
    /// The accepted snapshots' folder for this matrix (`<dir>/<matrix>`).
    pub dir: String,
    pub unchanged: usize,
    pub changed: usize,
    pub new: usize,
    /// Accepted snapshots this run did not produce (empty for an interrupted run, which cannot
    /// tell).
    pub missing: Vec<String>,
    /// Pending `.snap.new` files written by this run.
    pub pending_written: usize,
    /// Why none were written, when none were (`CI=true`, `--pending never`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_note: Option<String>,
    /// Snapshot files that could not be written (the run went on without them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_errors: Vec<String>,
}

impl SnapshotSummary {
    /// Anything but unchanged.
    pub fn drifted(&self) -> usize {
        self.changed + self.new + self.missing.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}:{line}: not a valid snapshot file: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// The exit code: 3 for a damaged snapshot file, 4 for the file system.
    pub fn exit_code(&self) -> i32 {
        match self {
            SnapshotError::Corrupt { .. } => crate::exit::INVALID_CONFIG,
            SnapshotError::Io { .. } => crate::exit::ENVIRONMENT,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A row, column, scenario or matrix id as one safe path component.
pub fn component(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

/// Identifies a snapshot: the cell and scenario it belongs to.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    pub matrix: &'a str,
    pub row: &'a str,
    pub column: &'a str,
    pub scenario: &'a str,
}

/// A YAML scalar for the header: plain when safe, double-quoted otherwise.
fn scalar(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The snapshot file: insta's header (`source`, `expression`, `info`) with the content's
/// SHA-256, then the content.
pub fn file_text(meta: &Meta<'_>, content: &str) -> String {
    format!(
        "---\nsource: {}\nexpression: {}\ninfo:\n  matrix: {}\n  row: {}\n  column: {}\n  scenario: {}\n  content_sha256: {}\n---\n{content}",
        scalar(&format!("koppeltest {}", env!("CARGO_PKG_VERSION"))),
        scalar(&format!(
            "{} × {}: {}",
            meta.row, meta.column, meta.scenario
        )),
        scalar(meta.matrix),
        scalar(meta.row),
        scalar(meta.column),
        scalar(meta.scenario),
        crate::ids::sha256_hex(content.as_bytes()),
    )
}

/// Reads a snapshot file's content, refusing a damaged one with the line that shows it.
pub fn parse(path: &Path, text: &str) -> Result<String, SnapshotError> {
    let corrupt = |line: usize, reason: &str| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    };
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(corrupt(1, "expected the header's opening '---'"));
    }
    let mut offset = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut hash = None;
    let mut line_no = 1;
    let mut closed = false;
    for line in lines {
        line_no += 1;
        offset += line.len();
        let l = line.trim_end();
        if l == "---" {
            closed = true;
            break;
        }
        if let Some(v) = l.trim_start().strip_prefix("content_sha256:") {
            hash = Some(v.trim().to_string());
        }
    }
    if !closed {
        return Err(corrupt(
            line_no,
            "the header is not closed by '---' (truncated?)",
        ));
    }
    let Some(hash) = hash else {
        return Err(corrupt(line_no, "the header has no content_sha256"));
    };
    let content = &text[offset..];
    if crate::ids::sha256_hex(content.as_bytes()) != hash {
        return Err(corrupt(
            line_no + 1,
            "the content does not match the header's content_sha256 (truncated or edited): \
             restore it (from version control) or delete it and accept a fresh one; \
             `koppeltest snapshots accept` replaces it with a pending one",
        ));
    }
    Ok(content.to_string())
}

/// The normalised content of a scenario's snapshot.
pub fn content(report: &ScenarioReport, reference: Reference) -> String {
    format!(
        "# {}\n\n{}",
        report.id,
        normalise::exchanges(&report.exchanges, reference)
    )
}

/// The diff is cut here: a snapshot that changed everywhere says so without a megabyte of it.
const DIFF_MAX_LINES: usize = 400;

/// A unified diff from `old` to `new`, bounded.
pub fn diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let text = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string();
    let total = text.lines().count();
    if total <= DIFF_MAX_LINES {
        return text;
    }
    let mut cut: String = text
        .lines()
        .take(DIFF_MAX_LINES)
        .flat_map(|l| [l, "\n"])
        .collect();
    cut.push_str(&format!(
        "[… {} more diff lines; compare the files themselves]\n",
        total - DIFF_MAX_LINES
    ));
    cut
}

/// Files below `dir` whose name ends with `suffix`, relative to `dir`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
                && let Ok(rel) = path.strip_prefix(dir)
            {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rel_string(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn write(path: &Path, text: &str) -> Result<(), SnapshotError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// The accepted snapshots of one matrix, and what this run observed against them.
pub struct Store {
    mode: Mode,
    matrix: String,
    /// `<dir>/<matrix>`.
    root: PathBuf,
    write_pending: bool,
    pending_note: Option<String>,
    reference: Reference,
    accepted: BTreeMap<String, String>,
    seen: BTreeSet<String>,
    unchanged: usize,
    changed: usize,
    new: usize,
    pending_written: usize,
    write_errors: Vec<String>,
    /// The first failed write into the run's folder.
    run_dir_failure: Option<SnapshotError>,
}

impl Store {
    /// Reads every accepted snapshot of `matrix` under `dir`; a damaged one is an error before
    /// anything runs.
    pub fn open(
        dir: &Path,
        matrix: &str,
        mode: Mode,
        pending: PendingPolicy,
        ci: bool,
        reference: Reference,
    ) -> Result<Store, SnapshotError> {
        let root = dir.join(component(matrix));
        let mut accepted = BTreeMap::new();
        for rel in files_ending(&root, ".snap")? {
            let path = root.join(&rel);
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            accepted.insert(rel_string(&rel), parse(&path, &text)?);
        }
        let write_pending = pending.writes(ci);
        let pending_note = (!write_pending).then(|| match pending {
            PendingPolicy::Never => "--pending never".to_string(),
            _ => "CI=true: nothing is written unless --pending always".to_string(),
        });
        Ok(Store {
            mode,
            matrix: matrix.to_string(),
            root,
            write_pending,
            pending_note,
            reference,
            accepted,
            seen: BTreeSet::new(),
            unchanged: 0,
            changed: 0,
            new: 0,
            pending_written: 0,
            write_errors: Vec::new(),
            run_dir_failure: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Snapshots one finished scenario: writes it to `run_dir/snapshots/…`, compares it with
    /// the accepted one, writes a pending file when it differs (and pending files are written),
    /// and returns its drift. A pending file that cannot be written is noted, not fatal; one
    /// that cannot be written into the run's folder is kept for [`Self::take_run_dir_failure`]:
    /// a report folder that fills up or becomes unwritable ends the run.
    pub fn observe(
        &mut self,
        row: &str,
        column: &str,
        report: &ScenarioReport,
        run_dir: Option<&Path>,
    ) -> Drift {
        let rel = format!(
            "{}/{}/{}.snap",
            component(row),
            component(column),
            component(&report.id)
        );
        let content = content(report, self.reference);
        let meta = Meta {
            matrix: &self.matrix,
            row,
            column,
            scenario: &report.id,
        };
        let text = file_text(&meta, &content);
        if let Some(run_dir) = run_dir
            && let Err(e) = write(&run_dir.join("snapshots").join(&rel), &text)
        {
            self.run_dir_failure.get_or_insert(e);
        }
        self.seen.insert(rel.clone());
        let pending_path = self.root.join(format!("{rel}.new"));
        let (state, diff) = match self.accepted.get(&rel) {
            Some(old) if *old == content => {
                self.unchanged += 1;
                // A pending file left from an earlier run is stale now.
                if self.write_pending && pending_path.exists() {
                    let _ = std::fs::remove_file(&pending_path);
                }
                (DriftState::Unchanged, None)
            }
            Some(old) => {
                self.changed += 1;
                (
                    DriftState::Changed,
                    Some(diff(old, &content, "accepted", "this run")),
                )
            }
            None => {
                self.new += 1;
                (DriftState::New, None)
            }
        };
        if state != DriftState::Unchanged && self.write_pending {
            match write(&pending_path, &text) {
                Ok(()) => self.pending_written += 1,
                Err(e) => self.write_errors.push(e.to_string()),
            }
        }
        Drift {
            state,
            snapshot: rel,
            diff,
        }
    }

    /// The first write into the run's folder that failed since the last call, if any.
    pub fn take_run_dir_failure(&mut self) -> Option<SnapshotError> {
        self.run_dir_failure.take()
    }

    /// The figures, with the accepted snapshots this run did not produce (unless interrupted).
    pub fn finish(&self, interrupted: bool) -> SnapshotSummary {
        let missing = if interrupted {
            Vec::new()
        } else {
            self.accepted
                .keys()
                .filter(|k| !self.seen.contains(*k))
                .cloned()
                .collect()
        };
        SnapshotSummary {
            mode: self.mode,
            dir: self.root.display().to_string(),
            unchanged: self.unchanged,
            changed: self.changed,
            new: self.new,
            missing,
            pending_written: self.pending_written,
            pending_note: if self.pending_written == 0 {
                self.pending_note.clone()
            } else {
                None
            },
            write_errors: self.write_errors.clone(),
        }
    }
}

/// A pending snapshot waiting for a decision.
#[derive(Debug)]
pub struct PendingSnapshot {
    /// `<matrix>/<row>/<column>/<scenario>.snap`, below the snapshot folder.
    pub name: String,
    pub pending: PathBuf,
    pub accepted: PathBuf,
    pub content: String,
    /// The accepted content it would replace; `None` for a new snapshot.
    pub old: Option<String>,
    /// The accepted file it would replace is damaged (unreadable as a snapshot).
    pub replaces_damaged: bool,
}

impl PendingSnapshot {
    pub fn state(&self) -> DriftState {
        if self.old.is_some() {
            DriftState::Changed
        } else {
            DriftState::New
        }
    }

    /// The diff a reviewer reads: from the accepted content, or from nothing.
    pub fn diff(&self) -> String {
        diff(
            self.old.as_deref().unwrap_or(""),
            &self.content,
            if self.old.is_some() {
                "accepted"
            } else {
                "(none)"
            },
            "pending",
        )
    }

    /// Moves the pending file over the accepted one.
    pub fn accept(&self) -> Result<(), SnapshotError> {
        std::fs::rename(&self.pending, &self.accepted).map_err(io(&self.pending))
    }

    pub fn reject(&self) -> Result<(), SnapshotError> {
        std::fs::remove_file(&self.pending).map_err(io(&self.pending))
    }
}

/// Whether `name` (without `.snap`) matches `filter`: a pattern with `*` wildcards matched
/// against the whole name, or else a substring.
pub fn matches(filter: &str, name: &str) -> bool {
    let name = name.strip_suffix(".snap").unwrap_or(name);
    if !filter.contains('*') {
        return name.contains(filter);
    }
    let parts: Vec<&str> = filter.split('*').collect();
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        let last = i == rest.len() - 1;
        if last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.is_empty()
}

/// The pending snapshots under `dir` (every matrix), filtered. A damaged pending file is an
/// error; a damaged accepted one is marked (`replaces_damaged`), so accepting over it repairs
/// it.
pub fn pending(dir: &Path, filter: Option<&str>) -> Result<Vec<PendingSnapshot>, SnapshotError> {
    if !dir.is_dir() {
        return Err(SnapshotError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no snapshot folder here (koppeltest run writes one; see --snapshot-dir)",
            ),
        });
    }
    let mut out = Vec::new();
    for rel in files_ending(dir, ".snap.new")? {
        let name = rel_string(&rel);
        let name = name.strip_suffix(".new").unwrap_or(&name).to_string();
        if filter.is_some_and(|f| !matches(f, &name)) {
            continue;
        }
        let pending = dir.join(&rel);
        let accepted = pending.with_extension("");
        let text = std::fs::read_to_string(&pending).map_err(io(&pending))?;
        let content = parse(&pending, &text)?;
        let (old, replaces_damaged) = match std::fs::read_to_string(&accepted) {
            Ok(t) => match parse(&accepted, &t) {
                Ok(old) => (Some(old), false),
                Err(_) => (None, true),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, false),
            Err(e) => return Err(io(&accepted)(e)),
        };
        out.push(PendingSnapshot {
            name,
            pending,
            accepted,
            content,
            old,
            replaces_damaged,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta<'static> {
        Meta {
            matrix: "default",
            row: "sim-conform",
            column: "pgo-alfa",
            scenario: "flow.happy-path",
        }
    }

    #[test]
    fn a_snapshot_file_reads_back_and_damage_is_refused_with_its_line() {
        let text = file_text(&meta(), "# flow.happy-path\n\nbody\n");
        assert!(text.starts_with("---\nsource: \"koppeltest "), "{text}");
        let path = Path::new("s.snap");
        assert_eq!(parse(path, &text).unwrap(), "# flow.happy-path\n\nbody\n");
        // Truncated in the content: the hash says so.
        let cut = &text[..text.len() - 3];
        let err = parse(path, cut).unwrap_err().to_string();
        assert!(
            err.contains("s.snap:11:") && err.contains("truncated"),
            "{err}"
        );
        // Truncated in the header.
        let err = parse(path, &text[..40]).unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
        // Not a snapshot at all.
        let err = parse(path, "{\"a\": 1}").unwrap_err().to_string();
        assert!(err.contains("s.snap:1:"), "{err}");
        // One changed byte.
        let changed = text.replacen("body", "bodY", 1);
        assert!(parse(path, &changed).is_err());
        assert_eq!(
            SnapshotError::Corrupt {
                path: path.into(),
                line: 1,
                reason: String::new()
            }
            .exit_code(),
            crate::exit::INVALID_CONFIG
        );
    }

    #[test]
    fn filters_match_by_substring_or_wildcards() {
        let name = "default/sim-conform/pgo-alfa/saml.xsw1.snap";
        assert!(matches("xsw1", name));
        assert!(matches("default/sim-conform/*", name));
        assert!(matches("*/pgo-alfa/saml.*", name));
        assert!(!matches("*/pgo-beta/*", name));
        assert!(!matches("xsw2", name));
        assert!(matches("*xsw1", name));
        assert!(!matches("*xsw", name));
    }

    #[test]
    fn path_components_are_safe() {
        assert_eq!(component("saml.xsw1"), "saml.xsw1");
        assert_eq!(component("../etc"), "_.._etc");
        assert_eq!(component("a/b c"), "a_b_c");
        assert_eq!(component(""), "_");
    }

    #[test]
    fn diffs_are_unified_and_bounded() {
        let d = diff("a\nb\nc\n", "a\nB\nc\n", "accepted", "this run");
        assert!(
            d.contains("--- accepted") && d.contains("-b") && d.contains("+B"),
            "{d}"
        );
        let old: String = (0..2000).map(|i| format!("{i}\n")).collect();
        let new: String = (0..2000).map(|i| format!("x{i}\n")).collect();
        let d = diff(&old, &new, "a", "b");
        assert!(
            d.lines().count() <= DIFF_MAX_LINES + 1,
            "{}",
            d.lines().count()
        );
        assert!(d.contains("more diff lines"));
    }
}
