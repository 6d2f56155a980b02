//! When and how long to wait before trying a failed request again.

use crate::error::{Error, ErrorCode};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const DEFAULT_INITIAL_DELAY_MS: u64 = 500;
pub const DEFAULT_MAX_DELAY_MS: u64 = 8_000;
/// A provider's `Retry-After` is honoured up to this long; past it the request fails instead.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            initial_delay: Duration::from_millis(DEFAULT_INITIAL_DELAY_MS),
            max_delay: Duration::from_millis(DEFAULT_MAX_DELAY_MS),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based) after `error`, or `None` if the error must
    /// not be retried: not retryable (400, 401, 403, 404…), a stream already under way, retries
    /// spent, or a `Retry-After` longer than [`MAX_RETRY_AFTER_MS`].
    pub fn delay_before(&self, retry: u32, error: &Error) -> Option<Duration> {
        if retry > self.max_retries || !error.retryable {
            return None;
        }
        if matches!(
            error.code,
            ErrorCode::StreamInterrupted | ErrorCode::Aborted
        ) {
            return None;
        }
        if let Some(ms) = error.retry_after_ms {
            return (ms <= MAX_RETRY_AFTER_MS).then(|| Duration::from_millis(ms));
        }
        // Exponential backoff with jitter: between half and all of initial × 2^(retry−1), capped.
        let exp = self.initial_delay.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let capped = exp.min(self.max_delay);
        let jitter = 0.5 + 0.5 * unit_random();
        Some(capped.mul_f64(jitter))
    }
}

/// A number in [0, 1), different on every call; good enough to spread retries apart.
fn unit_random() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Says in the error how many attempts were made, when there was more than one.
pub fn note_attempts(mut error: Error, attempts: u32) -> Error {
    if attempts > 1 {
        error.message = format!("{} (gave up after {attempts} attempts)", error.message);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: ErrorCode) -> Error {
        Error::new(code, "x")
    }

    #[test]
    fn retryable_errors_back_off_exponentially_within_bounds() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
        };
        let e = err(ErrorCode::Overloaded);
        for (retry, full) in [(1, 100), (2, 200), (3, 350), (4, 350), (5, 350)] {
            for _ in 0..20 {
                let d = p.delay_before(retry, &e).unwrap().as_millis() as u64;
                assert!(
                    d >= full / 2 && d <= full,
                    "retry {retry}: {d} not in [{}, {full}]",
                    full / 2
                );
            }
        }
        assert_eq!(p.delay_before(6, &e), None, "retries spent");
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_bound() {
        let p = RetryPolicy::default();
        let e = err(ErrorCode::RateLimit).with_retry_after_ms(Some(1234));
        assert_eq!(p.delay_before(1, &e), Some(Duration::from_millis(1234)));
        let e = err(ErrorCode::RateLimit).with_retry_after_ms(Some(0));
        assert_eq!(p.delay_before(1, &e), Some(Duration::ZERO));
        let e = err(ErrorCode::RateLimit).with_retry_after_ms(Some(MAX_RETRY_AFTER_MS + 1));
        assert_eq!(p.delay_before(1, &e), None);
    }

    #[test]
    fn what_is_never_retried() {
        let p = RetryPolicy::default();
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::Authentication,
            ErrorCode::Permission,
            ErrorCode::NotFound,
            ErrorCode::Config,
            ErrorCode::UnsupportedModel,
            ErrorCode::Aborted,
            ErrorCode::Internal,
        ] {
            assert_eq!(p.delay_before(1, &err(code)), None, "{code}");
        }
        // Retryable in itself, but a stream that has begun is not replayed.
        let e = err(ErrorCode::StreamInterrupted);
        assert!(e.retryable);
        assert_eq!(p.delay_before(1, &e), None);
        // An exhausted quota is a rate_limit that is not retryable.
        let e = err(ErrorCode::RateLimit).with_retryable(false);
        assert_eq!(p.delay_before(1, &e), None);
        let none = RetryPolicy {
            max_retries: 0,
            ..p
        };
        assert_eq!(none.delay_before(1, &err(ErrorCode::Overloaded)), None);
    }

    #[test]
    fn the_final_error_counts_attempts() {
        assert_eq!(note_attempts(err(ErrorCode::Overloaded), 1).message, "x");
        assert_eq!(
            note_attempts(err(ErrorCode::Overloaded), 3).message,
            "x (gave up after 3 attempts)"
        );
    }
}
