//! Outcomes: a failed check is a value, not an `Err`.
//!
//! | outcome | meaning |
//! |---|---|
//! | `pass`  | the check saw conformant behaviour |
//! | `fail`  | the check saw a deviation from a MUST, with evidence |
//! | `warn`  | the check saw a deviation from a SHOULD only: shown everywhere, fails nothing |
//! | `error` | the harness could not get the evidence (unreachable, broken exchange, not run) |
//! | `skip`  | the check does not apply to this cell (e.g. the PGO sent no state) |
//! | `omit`  | the requirement cannot be exercised in this service at all |
//!
//! Roll-up of a set (checks → scenario → cell): `fail` if any failed, else `error` if any
//! errored, else `warn` if any warned, else `pass` if any passed, else `skip` if any skipped,
//! else `omit`. A definite
//! failure outranks missing evidence, because a coalition must not launch either way and the
//! failure is the more useful fact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// A failed check whose every requirement is a SHOULD.
    Warn,
    Error,
    Skip,
    Omit,
}

impl Outcome {
    fn rank(self) -> u8 {
        match self {
            Outcome::Fail => 5,
            Outcome::Error => 4,
            Outcome::Warn => 3,
            Outcome::Pass => 2,
            Outcome::Skip => 1,
            Outcome::Omit => 0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Warn => "warn",
            Outcome::Error => "error",
            Outcome::Skip => "skip",
            Outcome::Omit => "omit",
        }
    }
}

/// The roll-up of `outcomes`; `omit` for an empty set.
pub fn roll_up(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    outcomes
        .into_iter()
        .max_by_key(|o| o.rank())
        .unwrap_or(Outcome::Omit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    #[test]
    fn roll_up_order() {
        assert_eq!(roll_up([Pass, Error, Fail]), Fail);
        assert_eq!(roll_up([Pass, Error, Skip]), Error);
        assert_eq!(roll_up([Skip, Pass, Omit]), Pass);
        assert_eq!(roll_up([Pass, Warn]), Warn);
        assert_eq!(roll_up([Warn, Error]), Error);
        assert_eq!(roll_up([Omit, Skip]), Skip);
        assert_eq!(roll_up([]), Omit);
    }
}
