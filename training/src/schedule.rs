//! Learning-rate schedule: linear warm-up, then cosine decay.

/// `lr(step)`: rises linearly from `peak/warmup` to `peak` over the first `warmup` steps, then
/// follows a half cosine from `peak` down to `peak * final_ratio` at step `total`.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub final_ratio: f64,
}

impl LrSchedule {
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let floor = self.peak * self.final_ratio;
        floor + (self.peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule { peak: 1e-3, warmup: 10, total: 110, final_ratio: 0.01 };
        assert!((s.at(0) - 1e-4).abs() < 1e-15);
        assert!((s.at(9) - 1e-3).abs() < 1e-15);
        assert!((s.at(10) - 1e-3).abs() < 1e-15);
        // Half-way through the decay the cosine term is 0.5.
        assert!((s.at(60) - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-12);
        assert!((s.at(110) - 1e-5).abs() < 1e-15);
        assert!((s.at(500) - 1e-5).abs() < 1e-15);
        assert!((1..200).all(|i| i <= 10 || s.at(i) <= s.at(i - 1)));
    }
}
