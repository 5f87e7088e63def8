//! The JEPA regression loss and the collapse monitor.
use burn::prelude::*;

/// Smooth L1 (Huber with beta 1): `0.5·d²` for |d| < 1, `|d| − 0.5` otherwise, averaged over
/// the real target tokens (`mask` `[B,N]`) and the D channels. Padded slots contribute
/// nothing; returns a one-element tensor.
pub fn smooth_l1_masked<B: Backend>(
    pred: Tensor<B, 3>,
    target: Tensor<B, 3>,
    mask: Tensor<B, 2, Bool>,
) -> Tensor<B, 1> {
    let [b, n, d] = pred.dims();
    let diff = pred - target;
    let abs = diff.clone().abs();
    let quadratic = diff.powi_scalar(2).mul_scalar(0.5);
    let linear = abs.clone().sub_scalar(0.5);
    let per_elem = linear.mask_where(abs.lower_elem(1.0), quadratic);
    let m = mask.float().reshape([b, n, 1]);
    let count = m.clone().sum().mul_scalar(d as f64).clamp_min(1.0);
    (per_elem * m).sum() / count
}

/// Mean over channels of the standard deviation (over the real target tokens of the batch)
/// of each channel. Near 0 means the targets collapsed to a constant.
pub fn mean_channel_std(values: &[f32], mask: &[bool], d: usize) -> f64 {
    let rows: Vec<&[f32]> = values.chunks(d).zip(mask).filter(|(_, &m)| m).map(|(r, _)| r).collect();
    if rows.len() < 2 || d == 0 {
        return 0.0;
    }
    let n = rows.len() as f64;
    (0..d)
        .map(|c| {
            let mean = rows.iter().map(|r| r[c] as f64).sum::<f64>() / n;
            let var = rows.iter().map(|r| (r[c] as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            var.sqrt()
        })
        .sum::<f64>()
        / d as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn smooth_l1_ignores_padding_and_matches_hand_values() {
        let device = Default::default();
        // Two jets, two slots, D = 2; the second jet's second slot is padding.
        let pred = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![0.5, 3.0, 0.0, -0.2, 1.0, 1.0, 100.0, -100.0], vec![2, 2, 2]),
            &device,
        );
        let target = Tensor::<Flex, 3>::zeros([2, 2, 2], &device);
        let mask = Tensor::<Flex, 2, Bool>::from_data(TensorData::new(vec![true, true, true, false], vec![2, 2]), &device);
        let got = smooth_l1_masked(pred, target, mask).into_scalar();
        // 0.125 + 2.5 + 0 + 0.02 + 0.5 + 0.5 over 6 real values.
        let want = (0.125 + 2.5 + 0.0 + 0.02 + 0.5 + 0.5) / 6.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn channel_std_uses_real_rows_only() {
        // Channel 0: 1, 3 → std √2; channel 1: 5, 5 → 0; the padded row would change both.
        let values = [1.0, 5.0, 3.0, 5.0, 100.0, -7.0];
        let got = mean_channel_std(&values, &[true, true, false], 2);
        assert!((got - 2f64.sqrt() / 2.0).abs() < 1e-12);
    }
}
