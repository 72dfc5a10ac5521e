//! Exponential backoff with full jitter, for reconnecting to PostgreSQL and brokers.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffSettings {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    pub multiplier: f64,
    /// Consecutive failed sessions after which the relay gives up and exits; 0 retries forever.
    pub max_attempts: u32,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            max_attempts: 0,
        }
    }
}

pub struct Backoff {
    settings: BackoffSettings,
    attempt: u32,
}

impl Backoff {
    pub fn new(settings: BackoffSettings) -> Backoff {
        Backoff {
            settings,
            attempt: 0,
        }
    }

    /// The next delay: uniformly random up to the exponential ceiling, so that many relays that
    /// lost the same broker do not come back in lockstep. `None` once the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.settings.max_attempts > 0 && self.attempt >= self.settings.max_attempts {
            return None;
        }
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        Some(ceiling.mul_f64(rand::rng().random_range(0.0..=1.0)))
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn ceiling(&self) -> Duration {
        let factor = self.settings.multiplier.powi(self.attempt.min(64) as i32);
        self.settings
            .initial
            .mul_f64(factor.min(1e6))
            .min(self.settings.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(BackoffSettings::default());
        let ceilings: Vec<Duration> = (0..12)
            .map(|_| {
                let ceiling = backoff.ceiling();
                assert!(backoff.next_delay().unwrap() <= ceiling);
                ceiling
            })
            .collect();
        assert_eq!(ceilings[0], Duration::from_millis(200));
        assert_eq!(ceilings[3], Duration::from_millis(1600));
        assert_eq!(ceilings[11], Duration::from_secs(30));
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(200));
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut backoff = Backoff::new(BackoffSettings {
            max_attempts: 2,
            ..BackoffSettings::default()
        });
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_some());
        assert_eq!(backoff.next_delay(), None);
        backoff.reset();
        assert!(backoff.next_delay().is_some());
    }
}
