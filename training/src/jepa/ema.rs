//! Exponential moving average of parameters: the JEPA target encoder trails the context
//! encoder, `θ_target ← m·θ_target + (1 − m)·θ_online`.
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::error::TrainError;

/// Collects every float parameter, flattened, in visiting order.
struct Collect<B: Backend> {
    params: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.params.push(t.reshape([n]));
    }
}

/// Blends each parameter with the online parameter at the same visiting position.
struct Blend<B: Backend> {
    online: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
    mismatch: Option<String>,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, target, mapper) = param.consume();
        let target = match self.online.next() {
            Some(online) if online.dims()[0] == target.shape().num_elements() => {
                let online: Tensor<B, D> = online.reshape(target.shape());
                target.mul_scalar(self.momentum) + online.mul_scalar(1.0 - self.momentum)
            }
            other => {
                self.mismatch.get_or_insert_with(|| {
                    format!("parameter shape {:?} vs online {:?}", target.dims(), other.map(|t| t.dims()))
                });
                target
            }
        };
        Param::from_mapped_value(id, target, mapper)
    }
}

/// Returns `target` with every parameter replaced by `m·target + (1 − m)·online`. Both
/// modules must have the same structure (they are visited in the same order); a structural
/// mismatch is an error.
pub fn ema_update<B: Backend, M: Module<B>>(target: M, online: &M, momentum: f64) -> Result<M, TrainError> {
    let mut collect = Collect { params: Vec::new() };
    online.visit(&mut collect);
    let n_online = collect.params.len();
    let mut blend = Blend { online: collect.params.into_iter(), momentum, mismatch: None };
    let target = target.map(&mut blend);
    let leftover = blend.online.len();
    if let Some(msg) = blend.mismatch {
        return Err(TrainError::Config(format!("EMA: modules differ: {msg}")));
    }
    if leftover != 0 {
        return Err(TrainError::Config(format!(
            "EMA: online module has {n_online} parameters, target {}",
            n_online - leftover
        )));
    }
    Ok(target)
}

/// Forces every lazily initialised parameter to materialise. A clone taken before that
/// shares the lazy state and would initialise to the same values only by accident of
/// ordering; touching first makes the copy an explicit, independent snapshot.
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// Momentum at `step` of `total`: linear from `start` to `end` (0.996 → 1.0 by default).
pub fn momentum_at(step: usize, total: usize, start: f64, end: f64) -> f64 {
    if total == 0 {
        return end;
    }
    let frac = (step as f64 / total as f64).clamp(0.0, 1.0);
    start + (end - start) * frac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mlp;
    use burn::backend::Flex;

    fn values<M: Module<Flex>>(m: &M) -> Vec<Vec<f32>> {
        let mut c = Collect::<Flex> { params: Vec::new() };
        m.visit(&mut c);
        c.params.into_iter().map(|t| t.into_data().to_vec::<f32>().unwrap()).collect()
    }

    #[test]
    fn ema_matches_its_formula_on_every_parameter() {
        let device = Default::default();
        let online = Mlp::<Flex>::new(3, 5, 2, &device);
        let target = Mlp::<Flex>::new(3, 5, 2, &device);
        let (before, on) = (values(&target), values(&online));
        let m = 0.9;
        let after = values(&ema_update(target, &online, m).unwrap());
        assert_eq!(after.len(), 4, "fc1 weight+bias, fc2 weight+bias");
        for ((a, t), o) in after.iter().zip(&before).zip(&on) {
            assert_eq!(a.len(), t.len());
            for ((&a, &t), &o) in a.iter().zip(t).zip(o) {
                let want = (m * t as f64 + (1.0 - m) * o as f64) as f32;
                assert!((a - want).abs() <= 1e-6 * (1.0 + want.abs()), "{a} vs {want}");
            }
            // The step must actually move the target (the two modules differ).
            assert!(a.iter().zip(t).any(|(x, y)| x != y));
        }
    }

    #[test]
    fn momentum_one_keeps_the_target_and_zero_copies_the_online() {
        let device = Default::default();
        let online = Mlp::<Flex>::new(2, 3, 1, &device);
        let target = Mlp::<Flex>::new(2, 3, 1, &device);
        let before = values(&target);
        assert_eq!(values(&ema_update(target.clone(), &online, 1.0).unwrap()), before);
        assert_eq!(values(&ema_update(target, &online, 0.0).unwrap()), values(&online));
    }

    #[test]
    fn mismatched_modules_are_an_error() {
        let device = Default::default();
        let online = Mlp::<Flex>::new(2, 3, 1, &device);
        let target = Mlp::<Flex>::new(2, 4, 1, &device);
        assert!(ema_update(target, &online, 0.5).is_err());
    }

    #[test]
    fn momentum_schedule_is_linear() {
        assert_eq!(momentum_at(0, 100, 0.996, 1.0), 0.996);
        assert!((momentum_at(50, 100, 0.996, 1.0) - 0.998).abs() < 1e-12);
        assert_eq!(momentum_at(200, 100, 0.996, 1.0), 1.0);
    }
}
