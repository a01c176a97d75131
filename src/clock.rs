//! The controllable clock of the simulated parties: a simulated DVA and the mock TVS of one
//! scenario share one, and a `wait` step against them advances it instead of sleeping, so
//! realistic lifetimes (a 60 s code, a 15-minute token) cost no time. Against an external DVA
//! the runner still really waits. A clock only runs ahead of real time, never back.
//!
//! What the simulated DVA *sends* (its AuthnRequest's IssueInstant, its ArtifactResolve) keeps
//! real time on purpose: the judge compares those instants with the real time they were
//! recorded at. Only what the simulated parties *decide* by time (code, token and artifact
//! lifetimes, an assertion's validity window) follows the clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The furthest a clock runs ahead, and the longest lifetime it represents: 100 years.
pub const MAX_AHEAD: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Real time plus an offset that only grows. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicU64>,
}

impl Clock {
    /// How far ahead of real time it runs.
    pub fn ahead(&self) -> Duration {
        Duration::from_millis(self.ahead_ms.load(Ordering::SeqCst))
    }

    /// Moves it `by` further ahead, up to [`MAX_AHEAD`] in all, so that neither the instant nor
    /// the UTC time can overflow and fall back to real time.
    pub fn advance(&self, by: Duration) {
        let cap = MAX_AHEAD.as_millis() as u64;
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .ahead_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ms).min(cap))
            });
    }

    /// `after` from now on this clock (a lifetime's end). A lifetime that would end beyond the
    /// furthest this clock can run ([`MAX_AHEAD`] past real time) ends there, so every lifetime
    /// can be waited out.
    pub fn deadline(&self, after: Duration) -> tokio::time::Instant {
        let real = tokio::time::Instant::now();
        let furthest = real.checked_add(MAX_AHEAD).unwrap_or(real);
        let now = real.checked_add(self.ahead()).unwrap_or(real);
        now.checked_add(after)
            .map_or(furthest, |end| end.min(furthest))
    }

    /// Now, as a monotonic instant (for lifetimes).
    pub fn instant(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        now.checked_add(self.ahead()).unwrap_or(now)
    }

    /// How long ago `then` (an instant of this clock) was.
    pub fn since(&self, then: tokio::time::Instant) -> Duration {
        self.instant().saturating_duration_since(then)
    }

    /// Now, as a UTC date and time (for SAML instants).
    pub fn utc(&self) -> time::OffsetDateTime {
        let now = time::OffsetDateTime::now_utc();
        time::Duration::try_from(self.ahead())
            .ok()
            .and_then(|d| now.checked_add(d))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_and_its_clones_run_ahead_by_exactly_that() {
        let clock = Clock::default();
        let other = clock.clone();
        let before = clock.instant();
        let utc = clock.utc();
        clock.advance(Duration::from_secs(900));
        assert!(other.since(before) >= Duration::from_secs(900));
        assert!(other.utc() - utc >= time::Duration::seconds(900));
        assert_eq!(other.ahead(), Duration::from_secs(900));
        // Saturating at MAX_AHEAD, never panicking, never falling back to real time.
        clock.advance(Duration::MAX);
        assert_eq!(clock.ahead(), MAX_AHEAD);
        assert!(clock.utc() > utc + time::Duration::days(365 * 99));
    }

    #[test]
    fn a_lifetime_too_long_to_represent_still_ends_once_the_clock_is_ahead() {
        let clock = Clock::default();
        clock.advance(Duration::from_secs(900));
        let end = clock.deadline(Duration::MAX);
        assert!(end > clock.instant(), "not over when issued");
        clock.advance(Duration::MAX);
        assert!(clock.instant() >= end, "waited out");
    }
}
