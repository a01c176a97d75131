//! Sharded runs: `koppeltest run --shard K/N` runs a deterministic slice of the cell × scenario
//! list, and `koppeltest merge` ([`merge`]) joins the shards' run folders into one run, as if
//! it had not been split. The CI system is the distributed engine (a GitHub Actions matrix, a
//! GitLab `parallel` job); koppeltest only slices and joins.
//!
//! A **unit** is one scenario of one cell, or a cell's whole PGO suite (its practices wait for
//! one real PGO together). Every shard computes the same assignment from the same matrix,
//! scenarios and (optional) durations file: round robin in matrix order, or, with recorded
//! durations, longest first onto the least-loaded shard.

pub mod merge;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::report::{RunReport, Side};
use crate::runner::Prepared;

/// `K/N`: the K-th (from 1) of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// From 0.
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("{text:?} is not a shard: K/N with 1 ≤ K ≤ N ≤ 1000, e.g. 2/4");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || k > n || n > 1000 {
            return Err(bad());
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// What one shard of a run was: recorded in its `report.json` for `merge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// K, from 1.
    pub index: usize,
    /// N.
    pub count: usize,
    /// Every scenario id of the run (not only this shard's), in the run's order: the order a
    /// merged cell lists them in.
    pub scenario_order: Vec<String>,
    /// Units in the whole run, and in this shard.
    pub units_total: usize,
    pub units_here: usize,
    /// `run --repeat N`.
    pub repeat: usize,
    /// The SHA-256 of the `--durations` report the shards were balanced by, if any: every shard
    /// must have had the same, or their slices do not fit together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations_sha256: Option<String>,
}

/// One thing a shard runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// Scenario `scenario` of cell (`row`, `column`), by index.
    Scenario {
        row: usize,
        column: usize,
        scenario: usize,
    },
    /// The PGO suite of (`row`, external `column`).
    Suite { row: usize, column: usize },
}

/// Every unit of a run, in matrix order: the DVA-side scenarios cell by cell, then the suites.
pub fn units(prepared: &Prepared) -> Vec<Unit> {
    let rows = prepared.rows.len();
    let columns = prepared.matrix.columns.len();
    let mut out = Vec::new();
    for row in 0..rows {
        for column in 0..columns {
            for scenario in 0..prepared.scenarios.len() {
                out.push(Unit::Scenario {
                    row,
                    column,
                    scenario,
                });
            }
        }
    }
    for row in 0..rows {
        for (column, c) in prepared.matrix.columns.iter().enumerate() {
            if c.kind == crate::pgo::PgoKind::External {
                out.push(Unit::Suite { row, column });
            }
        }
    }
    out
}

/// Recorded durations by (row id, column id, scenario id); a suite's key has the scenario
/// [`SUITE_KEY`].
pub type Durations = BTreeMap<(String, String, String), u64>;

/// The scenario id a suite's duration is recorded under.
pub const SUITE_KEY: &str = "(pgo suite)";

/// The durations an earlier run's report recorded (a suite's is its longest practice).
pub fn durations_of(report: &RunReport) -> Durations {
    let mut out = Durations::new();
    for cell in &report.cells {
        for s in &cell.scenarios {
            let id = match s.side {
                Side::Dva => s.id.clone(),
                Side::Pgo => SUITE_KEY.to_string(),
            };
            let entry = out
                .entry((cell.row.clone(), cell.column.clone(), id))
                .or_insert(0);
            *entry = (*entry).max(s.duration_ms);
        }
    }
    out
}

/// The shard of each unit, from each unit's recorded duration (`None`: not recorded). With no
/// duration at all: round robin in unit order. Otherwise longest first onto the least-loaded
/// shard (a unit without a duration counts as the median of those with one), ties to the lower
/// unit and shard index.
pub fn assign(known: &[Option<u64>], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut recorded: Vec<u64> = known.iter().flatten().copied().collect();
    if recorded.is_empty() {
        return (0..known.len()).map(|i| i % count).collect();
    }
    recorded.sort_unstable();
    let median = recorded[recorded.len() / 2];
    let cost: Vec<u64> = known.iter().map(|d| d.unwrap_or(median).max(1)).collect();
    let mut order: Vec<usize> = (0..known.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(cost[i]), i));
    let mut load = vec![0u64; count];
    let mut out = vec![0; known.len()];
    for i in order {
        let shard = (0..count).min_by_key(|&s| (load[s], s)).unwrap_or(0);
        load[shard] += cost[i];
        out[i] = shard;
    }
    out
}

/// The recorded duration of each unit, by its (row id, column id, scenario id).
fn known_durations(prepared: &Prepared, units: &[Unit], durations: &Durations) -> Vec<Option<u64>> {
    units
        .iter()
        .map(|u| {
            let (row, column, scenario) = match *u {
                Unit::Scenario {
                    row,
                    column,
                    scenario,
                } => (row, column, prepared.scenarios[scenario].id.clone()),
                Unit::Suite { row, column } => (row, column, SUITE_KEY.to_string()),
            };
            durations
                .get(&(
                    prepared.rows[row].row.id.clone(),
                    prepared.matrix.columns[column].id.clone(),
                    scenario,
                ))
                .copied()
        })
        .collect()
}

/// The units of `shard` (each run `repeat` times); `durations` with the SHA-256 of the report
/// they come from.
pub fn select(
    prepared: &Prepared,
    shard: Shard,
    durations: Option<(&Durations, String)>,
    repeat: usize,
) -> (Vec<Unit>, ShardInfo) {
    let (durations, durations_sha256) = match durations {
        Some((d, sha)) => (Some(d), Some(sha)),
        None => (None, None),
    };
    let all = units(prepared);
    let known = durations.map_or_else(
        || vec![None; all.len()],
        |d| known_durations(prepared, &all, d),
    );
    let assigned = assign(&known, shard.count);
    let mine: Vec<Unit> = all
        .iter()
        .zip(&assigned)
        .filter(|(_, s)| **s == shard.index)
        .map(|(u, _)| *u)
        .collect();
    let info = ShardInfo {
        index: shard.index + 1,
        count: shard.count,
        scenario_order: prepared.scenarios.iter().map(|s| s.id.clone()).collect(),
        units_total: all.len(),
        units_here: mine.len(),
        repeat,
        durations_sha256,
    };
    (mine, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_k_of_n() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index, s.count), (1, 4));
        assert_eq!(s.to_string(), "2/4");
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", "1/1001", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn without_durations_round_robin_and_with_them_longest_first_to_the_least_loaded() {
        assert_eq!(assign(&[None; 5], 2), [0, 1, 0, 1, 0]);
        let known = [Some(10), Some(1), Some(7), Some(4), None, Some(3)];
        let shards = assign(&known, 2);
        // 10 → 0; 7 → 1; 4 (the median) for the unknown and 4 → 1 then 0; 3 → 1 … balanced.
        let load = |s: usize| -> u64 {
            known
                .iter()
                .zip(&shards)
                .filter(|(_, x)| **x == s)
                .map(|(d, _)| d.unwrap_or(4))
                .sum()
        };
        assert!(load(0).abs_diff(load(1)) <= 1, "{shards:?}");
        assert_eq!(assign(&known, 2), shards, "deterministic");
        // Every unit lands on exactly one shard of the range.
        assert!(assign(&known, 4).iter().all(|s| *s < 4));
    }
}
