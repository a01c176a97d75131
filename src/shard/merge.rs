//! `koppeltest merge`: joins the run folders of the N shards of one run into one run folder with
//! the same `report.json`, `junit.xml`, `matrix.html`, launch list and `events.jsonl` an
//! unsharded run would have written, with the same verdicts.
//!
//! It refuses what would not be one run: a folder that is not a shard, shards of different
//! counts, a shard missing or given twice, different inputs (matrix, scenarios, fixtures, test
//! PKI) or koppeltest versions, a scenario of a cell reported by two shards.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::matrix::Matrix;
use crate::report::{CellReport, RunReport, ScenarioReport, Side, Summary};
use crate::snapshot::SnapshotSummary;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The shards are not the parts of one run (exit 3).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing failed (exit 4).
    #[error("{0}")]
    Io(String),
}

impl MergeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            MergeError::Invalid(_) => crate::exit::INVALID_CONFIG,
            MergeError::Io(_) => crate::exit::ENVIRONMENT,
        }
    }
}

fn invalid(message: String) -> MergeError {
    MergeError::Invalid(message)
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, MergeError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&path)
            .map_err(|e| MergeError::Io(format!("read {}: {e}", path.display())))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| MergeError::Io(format!("read {}: {e}", path.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = format!("{prefix}{name}");
            let kind = entry
                .file_type()
                .map_err(|e| MergeError::Io(format!("read {}: {e}", entry.path().display())))?;
            if kind.is_symlink() {
                return Err(invalid(format!(
                    "{}: a link; koppeltest writes none into a run folder",
                    entry.path().display()
                )));
            }
            if kind.is_dir() {
                stack.push((entry.path(), format!("{relative}/")));
            } else {
                let bytes = std::fs::read(entry.path())
                    .map_err(|e| MergeError::Io(format!("read {}: {e}", entry.path().display())))?;
                out.insert(relative, bytes);
            }
        }
    }
    Ok(out)
}

/// One shard's run folder, read.
struct Part {
    dir: PathBuf,
    report: RunReport,
    inputs: BTreeMap<String, Vec<u8>>,
}

/// Reads and checks the shards in `dirs`; returns them in shard order.
fn read_parts(dirs: &[PathBuf]) -> Result<Vec<Part>, MergeError> {
    if dirs.is_empty() {
        return Err(invalid("merge needs the run folders of the shards".into()));
    }
    // The reports parsed side by side (a shard's report.json of a large matrix is tens of MB).
    let reports: Vec<Result<RunReport, String>> = std::thread::scope(|scope| {
        let reading: Vec<_> = dirs
            .iter()
            .map(|dir| scope.spawn(move || RunReport::read(dir)))
            .collect();
        reading
            .into_iter()
            .map(|r| {
                r.join()
                    .unwrap_or_else(|_| Err("reading a report failed".into()))
            })
            .collect()
    });
    let mut parts = Vec::new();
    for (dir, report) in dirs.iter().zip(reports) {
        let report = report.map_err(invalid)?;
        if report.shard.is_none() {
            return Err(invalid(format!(
                "{}: not a shard (a run of `koppeltest run --shard K/N`)",
                dir.display()
            )));
        }
        let inputs_dir = dir.join(crate::evidence::INPUTS);
        let inputs = tree(&inputs_dir).map_err(|e| {
            invalid(format!(
                "{}: the run's inputs cannot be read ({e})",
                dir.display()
            ))
        })?;
        parts.push(Part {
            dir: dir.clone(),
            report,
            inputs,
        });
    }
    // report.json is outside input: bound what it says before anything is sized by it.
    for p in &parts {
        if p.report
            .shard
            .as_ref()
            .is_some_and(|s| s.count > 1000 || !(1..=s.count).contains(&s.index))
        {
            return Err(invalid(format!(
                "{}: not a shard K/N with 1 ≤ K ≤ N ≤ 1000",
                p.dir.display()
            )));
        }
    }
    parts.sort_by_key(|p| p.report.shard.as_ref().map_or(0, |s| s.index));
    let first = &parts[0];
    let Some(info) = first.report.shard.clone() else {
        return Err(invalid(format!("{}: not a shard", first.dir.display())));
    };
    let indexes: Vec<usize> = parts
        .iter()
        .map(|p| p.report.shard.as_ref().map_or(0, |s| s.index))
        .collect();
    for p in &parts {
        let Some(s) = p.report.shard.as_ref() else {
            return Err(invalid(format!("{}: not a shard", p.dir.display())));
        };
        if s.count != info.count {
            return Err(invalid(format!(
                "{} is shard {}/{}, {} is shard {}/{}: not shards of one run",
                first.dir.display(),
                info.index,
                info.count,
                p.dir.display(),
                s.index,
                s.count
            )));
        }
        let same_matrix = serde_json::to_value(&p.report.matrix).ok()
            == serde_json::to_value(&first.report.matrix).ok();
        let mode = |r: &RunReport| r.snapshots.as_ref().map(|s| s.mode);
        if s.scenario_order != info.scenario_order
            || p.report.koppeltest_version != first.report.koppeltest_version
            || !same_matrix
        {
            return Err(invalid(format!(
                "{} and {} ran other scenarios, another matrix or another koppeltest version",
                first.dir.display(),
                p.dir.display()
            )));
        }
        if s.repeat != info.repeat
            || s.durations_sha256 != info.durations_sha256
            || s.units_total != info.units_total
            || mode(&p.report) != mode(&first.report)
        {
            return Err(invalid(format!(
                "{} and {} were not sliced alike: give every shard the same --repeat, \
                 --durations and --snapshots",
                first.dir.display(),
                p.dir.display()
            )));
        }
        if p.inputs != first.inputs {
            let differs = p
                .inputs
                .keys()
                .chain(first.inputs.keys())
                .find(|k| p.inputs.get(*k) != first.inputs.get(*k))
                .cloned()
                .unwrap_or_default();
            return Err(invalid(format!(
                "{} ran with other inputs than {} (inputs/{differs} differs): give every shard \
                 the same matrix, scenarios, fixtures and --pki",
                p.dir.display(),
                first.dir.display()
            )));
        }
    }
    let expected: Vec<usize> = (1..=info.count.min(1000)).collect();
    if indexes != expected {
        let have: BTreeSet<usize> = indexes.iter().copied().collect();
        let missing: Vec<String> = expected
            .iter()
            .filter(|k| !have.contains(k))
            .map(|k| format!("{k}/{}", info.count))
            .collect();
        let twice: Vec<String> = have
            .iter()
            .filter(|k| indexes.iter().filter(|i| i == k).count() > 1)
            .map(|k| format!("{k}/{}", info.count))
            .collect();
        return Err(invalid(format!(
            "the shards do not make one run:{}{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!(" missing {}", missing.join(", "))
            },
            if twice.is_empty() {
                String::new()
            } else {
                format!(" given twice {}", twice.join(", "))
            }
        )));
    }
    // Every page and exchange file a shard's report names is one koppeltest writes, below its
    // cell's folder, and is there: report.json is outside input.
    for p in &parts {
        for cell in &p.report.cells {
            let own = format!("{}/", crate::report::cell_dir(&cell.row, &cell.column));
            for s in &cell.scenarios {
                let Some(file) = &s.exchanges_file else {
                    continue;
                };
                if !crate::report::is_cells_path(file) || !file.starts_with(&own) {
                    return Err(invalid(format!(
                        "{}: scenario {} names {file:?}, not a file of its cell",
                        p.dir.display(),
                        s.id
                    )));
                }
                let page = crate::report::html::exchanges_page(file);
                for (file, hint) in [
                    (file.as_str(), "a shard whose folder failed?"),
                    (
                        page.as_str(),
                        "the page of an exchange file; a shard from koppeltest before the \
                         exchanges pages lacks it: run it again",
                    ),
                ] {
                    let on_disk = std::fs::symlink_metadata(p.dir.join(file));
                    if !on_disk.is_ok_and(|m| m.is_file()) {
                        return Err(invalid(format!(
                            "{}: {file} is missing ({hint})",
                            p.dir.display()
                        )));
                    }
                }
            }
        }
    }
    // Every unit ran in exactly one shard, unless a shard was interrupted (then the merged run
    // is too, and says so).
    let here: usize = parts
        .iter()
        .filter_map(|p| p.report.shard.as_ref())
        .map(|s| s.units_here)
        .sum();
    if here != info.units_total {
        return Err(invalid(format!(
            "the shards ran {here} units of {}: not the slices of one run",
            info.units_total
        )));
    }
    Ok(parts)
}

/// The snapshot figures of the whole run: counts add up; a snapshot is missing only when no
/// shard produced it, so in every shard's list.
fn merge_snapshots(parts: &[Part]) -> Option<SnapshotSummary> {
    let all: Vec<&SnapshotSummary> = parts
        .iter()
        .filter_map(|p| p.report.snapshots.as_ref())
        .collect();
    let first = (*all.first()?).clone();
    let mut missing: BTreeSet<String> = first.missing.iter().cloned().collect();
    let mut merged = SnapshotSummary {
        unchanged: 0,
        changed: 0,
        new: 0,
        pending_written: 0,
        write_errors: Vec::new(),
        ..first
    };
    for s in &all {
        merged.unchanged += s.unchanged;
        merged.changed += s.changed;
        merged.new += s.new;
        merged.pending_written += s.pending_written;
        merged.write_errors.extend(s.write_errors.iter().cloned());
        let theirs: BTreeSet<String> = s.missing.iter().cloned().collect();
        missing = missing.intersection(&theirs).cloned().collect();
    }
    if merged.pending_written > 0 {
        merged.pending_note = None;
    }
    merged.missing = missing.into_iter().collect();
    Some(merged)
}

/// Each exchange file of the merged run, with the index of the shard it is in.
type Links = Vec<(usize, String)>;

/// The merged cells, in matrix order, each assembled from every shard's scenarios (moved out
/// of the shards' reports, not copied), and each exchange file with the shard it is in.
fn merge_cells(
    parts: &mut [Part],
    matrix: &Matrix,
) -> Result<(Vec<CellReport>, Links), MergeError> {
    let info = &parts[0].report;
    let order: BTreeMap<String, usize> = info
        .shard
        .as_ref()
        .map(|s| {
            s.scenario_order
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect()
        })
        .unwrap_or_default();
    let ids: Vec<(String, String)> = info
        .matrix
        .rows
        .iter()
        .flat_map(|r| {
            info.matrix
                .columns
                .iter()
                .map(|c| (r.id.clone(), c.id.clone()))
        })
        .collect();
    let mut cells = Vec::new();
    let mut links = Vec::new();
    for (row, column) in &ids {
        let mut scenarios: Vec<ScenarioReport> = Vec::new();
        let mut reliability = None;
        let mut seen = BTreeSet::new();
        for (k, p) in parts.iter_mut().enumerate() {
            let Some(cell) = p
                .report
                .cells
                .iter_mut()
                .find(|c| &c.row == row && &c.column == column)
            else {
                continue;
            };
            reliability.get_or_insert_with(|| cell.reliability.clone());
            for s in std::mem::take(&mut cell.scenarios) {
                if !seen.insert((s.side == Side::Pgo, s.id.clone())) {
                    return Err(invalid(format!(
                        "{row} × {column}: scenario {} is in more than one shard",
                        s.id
                    )));
                }
                if let Some(file) = &s.exchanges_file {
                    links.push((k, file.clone()));
                }
                scenarios.push(s);
            }
        }
        if scenarios.is_empty() {
            continue;
        }
        // DVA side in the run's scenario order, then the PGO side as its suite listed it.
        scenarios.sort_by_key(|s| match s.side {
            Side::Dva => (0, order.get(s.id.as_str()).copied().unwrap_or(usize::MAX)),
            Side::Pgo => (1, 0),
        });
        let mut cell = CellReport::assemble(row, column, scenarios, matrix);
        if let Some(r) = reliability {
            cell.reliability = r;
        }
        cells.push(cell);
    }
    Ok((cells, links))
}

/// Merges the shards in `dirs` into `out` (a new or empty folder) as run `run_id`.
pub fn merge(dirs: &[PathBuf], out: &Path, run_id: &str) -> Result<RunReport, MergeError> {
    let mut parts = read_parts(dirs)?;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(invalid(format!(
            "{} is not empty: merge writes a whole run folder; give a new --out",
            out.display()
        )));
    }
    let first = &parts[0];
    let matrix_path = first.dir.join(crate::evidence::INPUTS).join("matrix.toml");
    let matrix_text = String::from_utf8_lossy(
        first
            .inputs
            .get("matrix.toml")
            .ok_or_else(|| invalid(format!("{}: missing", matrix_path.display())))?,
    )
    .into_owned();
    let matrix = Matrix::parse(&matrix_path, &matrix_text).map_err(|e| invalid(e.to_string()))?;
    let (cells, links) = merge_cells(&mut parts, &matrix)?;
    let first = &parts[0];
    let interrupted = parts.iter().any(|p| p.report.interrupted);
    let scenarios = first
        .report
        .shard
        .as_ref()
        .map_or(0, |s| s.scenario_order.len());
    let dva_side = cells
        .iter()
        .flat_map(|c| &c.scenarios)
        .filter(|s| s.side == Side::Dva)
        .count();
    let expected = first.report.matrix.rows.len() * first.report.matrix.columns.len() * scenarios;
    if !interrupted && dva_side != expected {
        return Err(invalid(format!(
            "the shards hold {dva_side} of the run's {expected} scenario results: a shard is \
             incomplete"
        )));
    }
    let started_at = parts
        .iter()
        .map(|p| p.report.started_at.clone())
        .min()
        .unwrap_or_default();
    let finished_at = parts
        .iter()
        .map(|p| p.report.finished_at.clone())
        .max()
        .unwrap_or_default();
    let mut summary = Summary::of(&cells, interrupted);
    let snapshots = merge_snapshots(&parts);
    if let Some(s) = &snapshots
        && s.mode == crate::snapshot::Mode::Strict
        && s.drifted() > 0
        && matches!(summary.exit_code, crate::exit::OK | crate::exit::RUN_ERRORS)
    {
        summary.exit_code = crate::exit::CONFORMANCE_FAILURE;
    }
    let mut report = RunReport {
        schema: crate::report::REPORT_SCHEMA.to_string(),
        run_id: run_id.to_string(),
        koppeltest_version: first.report.koppeltest_version.clone(),
        started_at,
        finished_at,
        interrupted,
        matrix: first.report.matrix.clone(),
        cells,
        summary,
        snapshots,
        shard: None,
        spill: None,
    };
    let day =
        crate::launch::run_date(&report).unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    crate::launch::decide_all(&mut report, day);
    write(&parts, &links, &mut report, out)?;
    Ok(report)
}

/// The merged run folder: the first shard's inputs and VERSION, every shard's run snapshots
/// and exchange files with their pages, `events.jsonl` of all shards in shard order, and the
/// reports.
fn write(
    parts: &[Part],
    links: &[(usize, String)],
    report: &mut RunReport,
    out: &Path,
) -> Result<(), MergeError> {
    let io =
        |path: &Path, e: std::io::Error| MergeError::Io(format!("write {}: {e}", path.display()));
    let put = |relative: &str, bytes: &[u8]| -> Result<(), MergeError> {
        let path = out.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let first = &parts[0];
    for (name, bytes) in &first.inputs {
        put(&format!("{}/{name}", crate::evidence::INPUTS), bytes)?;
    }
    let version = std::fs::read(first.dir.join(crate::evidence::VERSION)).map_err(|e| {
        MergeError::Io(format!("read {}: {e}", first.dir.join("VERSION").display()))
    })?;
    put(crate::evidence::VERSION, &version)?;
    // events.jsonl: the shards' lines in shard order, copied file to file.
    let events_path = out.join("events.jsonl");
    let mut events = std::fs::File::create(&events_path).map_err(|e| io(&events_path, e))?;
    for p in parts {
        use std::io::{Read, Seek, Write};
        let path = p.dir.join("events.jsonl");
        let read = |e: std::io::Error| MergeError::Io(format!("read {}: {e}", path.display()));
        let mut from = std::fs::File::open(&path).map_err(read)?;
        let copied = std::io::copy(&mut from, &mut events).map_err(|e| io(&events_path, e))?;
        let mut last = [0u8];
        if copied > 0 {
            from.seek(std::io::SeekFrom::Start(copied - 1))
                .and_then(|_| from.read_exact(&mut last))
                .map_err(read)?;
            if last[0] != b'\n' {
                events.write_all(b"\n").map_err(|e| io(&events_path, e))?;
            }
        }
        // Run snapshots.
        let snapshots = p.dir.join("snapshots");
        if snapshots.is_dir() {
            for (name, bytes) in tree(&snapshots)? {
                put(&format!("snapshots/{name}"), &bytes)?;
            }
        }
    }
    // The exchange files report.json references with their pages, hard-linked where the file
    // system allows, on a second thread while the reports are written (the cell pages from
    // report.json alone: they read no exchange).
    std::thread::scope(|scope| {
        let linking = scope.spawn(|| -> Result<(), MergeError> {
            let mut made = std::collections::BTreeSet::new();
            for (k, json) in links {
                let from = &parts[*k].dir;
                for file in [json.to_string(), crate::report::html::exchanges_page(json)] {
                    let to = out.join(&file);
                    if let Some(parent) = to.parent()
                        && made.insert(parent.to_path_buf())
                    {
                        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                    }
                    crate::report::link_or_copy(&from.join(&file), &to).map_err(|e| io(&to, e))?;
                }
            }
            Ok(())
        });
        let written =
            crate::report::write_all(report, out).map_err(|e| MergeError::Io(e.to_string()));
        let linked = linking
            .join()
            .unwrap_or_else(|_| Err(MergeError::Io("linking the exchange files failed".into())));
        written.and(linked)
    })
}
