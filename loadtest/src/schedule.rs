//! Open-loop arrival times.
//!
//! The schedule is fixed before the run and never looks at responses: that is what makes a
//! run open-loop, and measuring each latency from its *scheduled* time is what keeps a slow
//! response from hiding the requests that should have been sent while it was outstanding
//! (coordinated omission).
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Exponential gaps (a Poisson process): independent clients, the realistic default.
    Poisson,
    /// Equal gaps of 1 / rate.
    Constant,
}

/// The scheduled send times of one run, as offsets from its start.
#[derive(Debug)]
pub struct Schedule {
    arrivals: Arrivals,
    rate: f64,
    n: u64,
    t: f64,
    rng: StdRng,
}

impl Schedule {
    /// `rate` in arrivals per second (must be finite and positive; callers validate it).
    /// `seed` makes Poisson schedules reproducible.
    pub fn new(arrivals: Arrivals, rate: f64, seed: u64) -> Self {
        Self { arrivals, rate, n: 0, t: 0.0, rng: StdRng::seed_from_u64(seed) }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    /// The next scheduled offset; the first arrival is at 0.
    fn next(&mut self) -> Option<Duration> {
        let offset = match self.arrivals {
            // Computed from the index, not accumulated, so rounding never drifts.
            Arrivals::Constant => self.n as f64 / self.rate,
            Arrivals::Poisson => {
                let t = self.t;
                // 1 - U lies in (0, 1], so the logarithm is finite.
                let u: f64 = self.rng.random();
                self.t += -(1.0 - u).ln() / self.rate;
                t
            }
        };
        self.n += 1;
        Some(Duration::from_secs_f64(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_gaps_are_exact() {
        let offsets: Vec<Duration> = Schedule::new(Arrivals::Constant, 250.0, 0).take(1001).collect();
        assert_eq!(offsets[0], Duration::ZERO);
        assert_eq!(offsets[1], Duration::from_millis(4));
        assert_eq!(offsets[1000], Duration::from_secs(4));
    }

    #[test]
    fn poisson_has_the_rate_and_exponential_gaps() {
        let rate = 1000.0;
        let offsets: Vec<f64> =
            Schedule::new(Arrivals::Poisson, rate, 7).take(100_001).map(|d| d.as_secs_f64()).collect();
        let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g >= 0.0));
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        // Exponential: mean 1/rate, standard deviation equal to the mean. With 1e5 samples the
        // mean's relative standard error is 0.3 %, so 2 % is many sigma.
        assert!((mean * rate - 1.0).abs() < 0.02, "mean gap {mean}");
        assert!((var.sqrt() / mean - 1.0).abs() < 0.03, "cv {}", var.sqrt() / mean);
        // Memorylessness: P(gap > 2/rate) = e^-2.
        let tail = gaps.iter().filter(|&&g| g > 2.0 / rate).count() as f64 / n;
        assert!((tail - (-2.0f64).exp()).abs() < 0.01, "tail {tail}");
    }

    #[test]
    fn seeds_reproduce() {
        let a: Vec<Duration> = Schedule::new(Arrivals::Poisson, 10.0, 3).take(50).collect();
        let b: Vec<Duration> = Schedule::new(Arrivals::Poisson, 10.0, 3).take(50).collect();
        let c: Vec<Duration> = Schedule::new(Arrivals::Poisson, 10.0, 4).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
