//! The statistics of a soak: Wilson score intervals for "answers within budget", the decision
//! against MedMij's availability figure, and nearest-rank percentiles.
//!
//! Written for the soak alone, from the formulas (Wilson 1927; Newcombe 1998 for its use on
//! proportions near 1): no statistics crate is needed for three functions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The two-sided 95 % normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `k` successes in `n` trials at 95 %; `(0, 1)` for `n = 0`.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = k.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Whether a measured fraction meets a required one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The whole interval lies at or above the figure.
    Meets,
    /// The whole interval lies below the figure.
    Misses,
    /// The interval straddles the figure: more answers are needed.
    Undecided,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Meets => "meets",
            Decision::Misses => "misses",
            Decision::Undecided => "undecided",
        }
    }
}

/// The decision for `k` of `n` answers within budget against `target`, and, when undecided,
/// how many more answers at the same observed rate would decide it (`None`: the rate equals
/// the figure, or nothing was measured, so no number of answers would).
pub fn decide(k: u64, n: u64, target: f64) -> (Decision, Option<u64>) {
    let (low, high) = wilson(k, n);
    if n > 0 && low >= target {
        return (Decision::Meets, None);
    }
    if n > 0 && high < target {
        return (Decision::Misses, None);
    }
    if n == 0 {
        return (Decision::Undecided, None);
    }
    let rate = k as f64 / n as f64;
    let decided = |m: u64| {
        let (lo, hi) = wilson((rate * m as f64).round() as u64, m);
        lo >= target || hi < target
    };
    // Double until decided (or hopeless), then bisect.
    let mut high_m = n.max(1);
    loop {
        if decided(high_m) {
            break;
        }
        if high_m > 1 << 40 {
            return (Decision::Undecided, None);
        }
        high_m *= 2;
    }
    let mut low_m = n;
    while low_m + 1 < high_m {
        let mid = low_m + (high_m - low_m) / 2;
        if decided(mid) {
            high_m = mid;
        } else {
            low_m = mid;
        }
    }
    (Decision::Undecided, Some(high_m.saturating_sub(n).max(1)))
}

/// The nearest-rank percentile `p` (0–100) of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81 of 263 gives 0.2553–0.3662 (method 3, Wilson).
        let (lo, hi) = wilson(81, 263);
        assert!(
            (lo - 0.2553).abs() < 5e-4 && (hi - 0.3662).abs() < 5e-4,
            "{lo} {hi}"
        );
        // 15 of 148: 0.0624–0.1605.
        let (lo, hi) = wilson(15, 148);
        assert!(
            (lo - 0.0624).abs() < 5e-4 && (hi - 0.1605).abs() < 5e-4,
            "{lo} {hi}"
        );
        // All successes: the upper bound is 1, the lower n/(n+z²).
        let (lo, hi) = wilson(100, 100);
        assert!((hi - 1.0).abs() < 1e-12);
        assert!((lo - 100.0 / (100.0 + Z95 * Z95)).abs() < 1e-9, "{lo}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn decisions_and_the_answers_still_needed() {
        // 1000 of 1000 within budget: lower bound 0.9962 ≥ 0.995.
        assert_eq!(decide(1000, 1000, 0.995), (Decision::Meets, None));
        // 98 % of 1000: upper bound 0.9871 < 0.995.
        assert_eq!(decide(980, 1000, 0.995).0, Decision::Misses);
        // 100 of 100: lower bound 0.963, undecided; all-good answers decide from n/(n+z²) ≥
        // 0.995, i.e. n ≥ 765: 665 more.
        let (d, more) = decide(100, 100, 0.995);
        assert_eq!(d, Decision::Undecided);
        let more = more.expect("a number");
        assert!((660..=670).contains(&more), "{more}");
        let total = 100 + more;
        assert_eq!(decide(total, total, 0.995).0, Decision::Meets);
        assert_eq!(decide(total - 2, total - 2, 0.995).0, Decision::Undecided);
        // Nothing measured: undecided, no estimate.
        assert_eq!(decide(0, 0, 0.995), (Decision::Undecided, None));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
