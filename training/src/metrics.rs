//! Classification metrics as jet-tagging papers report them: accuracy, ROC curves and AUC,
//! background rejection 1/ε_B at fixed signal efficiency ε_S, one-vs-rest AUC for multi-class
//! tasks, and the confusion matrix.
//!
//! Conventions:
//! - Scores are "signal-like": a jet is selected as signal when its score is at or above a
//!   threshold. Equal scores are never split: tied jets enter the selection together, so the
//!   ROC curve takes one diagonal step over a tie, and the AUC counts each tied
//!   signal/background pair as ½ (Mann-Whitney U).
//! - ε_S is the true positive rate, ε_B the false positive rate.
//! - Background rejection at a target ε_S is read from the ROC curve by linear interpolation
//!   of ε_B in ε_S on the first segment that reaches the target (the curve of randomly
//!   mixing the two neighbouring thresholds, as `numpy.interp(eff_s, tpr, fpr)` does in the
//!   ParT tooling). When no background passes, the rejection is infinite and reported as
//!   `None`, which serialises to JSON `null` (JSON has no infinity).

pub mod plot;

use serde::Serialize;

/// Why a metric could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// No samples.
    #[error("no samples to compute {0} on")]
    Empty(&'static str),
    /// Two inputs that pair up element by element have different lengths.
    #[error("{what}: {left} vs {right} entries")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    /// A score is NaN or infinite.
    #[error("score at index {0} is not finite")]
    NonFinite(usize),
    /// A class index is outside `0..n_classes`.
    #[error("class index {index} out of range for {n_classes} classes")]
    ClassOutOfRange { index: usize, n_classes: usize },
    /// ROC needs both classes present.
    #[error("ROC needs both signal and background samples (got {signal} signal, {background} background)")]
    OneClass { signal: usize, background: usize },
    /// The target efficiency is outside [0, 1].
    #[error("signal efficiency {0} is outside [0, 1]")]
    BadEfficiency(f64),
    /// A plot could not be drawn or written.
    #[error("plot failed: {0}")]
    Plot(String),
}

/// Fraction of samples whose predicted class equals the true class.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> Result<f64, MetricsError> {
    check_pair("accuracy", predicted.len(), truth.len())?;
    let correct = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(correct as f64 / truth.len() as f64)
}

/// The most probable class of each row of row-major `probs` `[N, n_classes]` (the first one on
/// ties).
pub fn argmax_rows(probs: &[f32], n_classes: usize) -> Result<Vec<usize>, MetricsError> {
    let rows = check_rows(probs, n_classes)?;
    Ok(rows
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &p)| {
                    if p > best.1 {
                        (i, p)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect())
}

/// Confusion matrix `m[true][predicted]` counts.
pub fn confusion_matrix(
    predicted: &[usize],
    truth: &[usize],
    n_classes: usize,
) -> Result<Vec<Vec<u64>>, MetricsError> {
    check_pair("confusion matrix", predicted.len(), truth.len())?;
    let mut matrix = vec![vec![0u64; n_classes]; n_classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        for index in [p, t] {
            if index >= n_classes {
                return Err(MetricsError::ClassOutOfRange { index, n_classes });
            }
        }
        matrix[t][p] += 1;
    }
    Ok(matrix)
}

/// A ROC curve as points of (ε_B, ε_S), one per distinct score, from (0, 0) to (1, 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RocCurve {
    /// False positive rate ε_B at each point, non-decreasing.
    pub fpr: Vec<f64>,
    /// True positive rate ε_S at each point, non-decreasing.
    pub tpr: Vec<f64>,
    /// Selection threshold (score ≥ threshold) of each point; the first point selects nothing
    /// (threshold +∞), written as `None` so that the curve serialises to valid JSON.
    pub thresholds: Vec<Option<f64>>,
}

/// The ROC curve of `scores` (higher = more signal-like) for samples whose truth is
/// `is_signal`. Tied scores form a single point, so the curve steps diagonally over ties.
pub fn roc_curve(scores: &[f32], is_signal: &[bool]) -> Result<RocCurve, MetricsError> {
    let (n_signal, n_background) = check_binary(scores, is_signal)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![None],
    };
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            if is_signal[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        curve.tpr.push(tp as f64 / n_signal as f64);
        curve.fpr.push(fp as f64 / n_background as f64);
        curve.thresholds.push(Some(f64::from(threshold)));
    }
    Ok(curve)
}

/// Area under the ROC curve by the Mann-Whitney statistic: the probability that a random
/// signal jet scores above a random background jet, ties counting ½. Equal to the trapezoid
/// area under [`roc_curve`].
pub fn roc_auc(scores: &[f32], is_signal: &[bool]) -> Result<f64, MetricsError> {
    let (n_signal, n_background) = check_binary(scores, is_signal)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the signal samples.
    let mut signal_rank_sum = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        let signal_in_tie = order[i..j].iter().filter(|&&k| is_signal[k]).count();
        signal_rank_sum += mean_rank * signal_in_tie as f64;
        i = j;
    }
    let (ns, nb) = (n_signal as f64, n_background as f64);
    let u = signal_rank_sum - ns * (ns + 1.0) / 2.0;
    Ok(u / (ns * nb))
}

/// Background efficiency ε_B at signal efficiency `signal_efficiency`, linearly interpolated
/// on the ROC curve (see the module docs).
pub fn background_efficiency_at(
    curve: &RocCurve,
    signal_efficiency: f64,
) -> Result<f64, MetricsError> {
    if !(0.0..=1.0).contains(&signal_efficiency) {
        return Err(MetricsError::BadEfficiency(signal_efficiency));
    }
    let Some(i) = curve.tpr.iter().position(|&t| t >= signal_efficiency) else {
        // Cannot happen on a curve from `roc_curve` (it ends at ε_S = 1).
        return Err(MetricsError::BadEfficiency(signal_efficiency));
    };
    if i == 0 {
        return Ok(curve.fpr[0]);
    }
    let (t0, t1) = (curve.tpr[i - 1], curve.tpr[i]);
    let (f0, f1) = (curve.fpr[i - 1], curve.fpr[i]);
    Ok(f0 + (f1 - f0) * (signal_efficiency - t0) / (t1 - t0))
}

/// Background rejection 1/ε_B at `signal_efficiency`; `None` when ε_B is zero (infinite
/// rejection: no background passes).
pub fn background_rejection_at(
    curve: &RocCurve,
    signal_efficiency: f64,
) -> Result<Option<f64>, MetricsError> {
    let eff_b = background_efficiency_at(curve, signal_efficiency)?;
    Ok((eff_b > 0.0).then(|| 1.0 / eff_b))
}

/// The metrics of a binary (signal vs background) tagger.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BinaryMetrics {
    /// Samples used.
    pub n_jets: usize,
    /// Fraction classified correctly at score ≥ 0.5.
    pub accuracy: f64,
    /// Area under the ROC curve.
    pub auc: f64,
    /// 1/ε_B at ε_S = 0.5; `None` (JSON null) means infinite.
    pub rejection_at_eff_s_0_5: Option<f64>,
    /// 1/ε_B at ε_S = 0.3; `None` (JSON null) means infinite.
    pub rejection_at_eff_s_0_3: Option<f64>,
}

/// Accuracy (score ≥ 0.5 called signal, so pass a probability), AUC and the rejections at
/// ε_S = 0.5 and 0.3, together with the ROC curve for plotting.
pub fn binary_metrics(
    scores: &[f32],
    is_signal: &[bool],
) -> Result<(BinaryMetrics, RocCurve), MetricsError> {
    let curve = roc_curve(scores, is_signal)?;
    let predicted: Vec<usize> = scores.iter().map(|&s| usize::from(s >= 0.5)).collect();
    let truth: Vec<usize> = is_signal.iter().map(|&s| usize::from(s)).collect();
    let metrics = BinaryMetrics {
        n_jets: scores.len(),
        accuracy: accuracy(&predicted, &truth)?,
        auc: roc_auc(scores, is_signal)?,
        rejection_at_eff_s_0_5: background_rejection_at(&curve, 0.5)?,
        rejection_at_eff_s_0_3: background_rejection_at(&curve, 0.3)?,
    };
    Ok((metrics, curve))
}

/// The score ParT uses to compare two classes of a multi-class tagger:
/// `p_signal / (p_signal + p_background)` per row of `probs` `[N, n_classes]` (0.5 where both
/// are zero).
pub fn pairwise_discriminant(
    probs: &[f32],
    n_classes: usize,
    signal: usize,
    background: usize,
) -> Result<Vec<f32>, MetricsError> {
    for index in [signal, background] {
        if index >= n_classes {
            return Err(MetricsError::ClassOutOfRange { index, n_classes });
        }
    }
    Ok(check_rows(probs, n_classes)?
        .map(|row| {
            let total = row[signal] + row[background];
            if total > 0.0 {
                row[signal] / total
            } else {
                0.5
            }
        })
        .collect())
}

/// One-vs-rest AUC of each class from row-major `probs` `[N, n_classes]`: class `c`'s
/// probability as the score, class `c` as signal, all others as background. `None` for a
/// class that is absent (or alone) in `labels`, where the AUC is undefined.
pub fn one_vs_rest_auc(
    probs: &[f32],
    labels: &[usize],
    n_classes: usize,
) -> Result<Vec<Option<f64>>, MetricsError> {
    check_pair("one-vs-rest AUC", probs.len(), labels.len() * n_classes)?;
    if let Some(&index) = labels.iter().find(|&&l| l >= n_classes) {
        return Err(MetricsError::ClassOutOfRange { index, n_classes });
    }
    (0..n_classes)
        .map(|c| {
            let scores: Vec<f32> = probs.iter().skip(c).step_by(n_classes).copied().collect();
            let is_signal: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            match roc_auc(&scores, &is_signal) {
                Ok(auc) => Ok(Some(auc)),
                Err(MetricsError::OneClass { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .collect()
}

/// Mean of the defined per-class AUCs (`None` if none is defined).
pub fn macro_average(aucs: &[Option<f64>]) -> Option<f64> {
    let defined: Vec<f64> = aucs.iter().flatten().copied().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

fn check_pair(what: &'static str, left: usize, right: usize) -> Result<(), MetricsError> {
    if left != right {
        return Err(MetricsError::LengthMismatch { what, left, right });
    }
    if left == 0 {
        return Err(MetricsError::Empty(what));
    }
    Ok(())
}

fn check_rows(
    probs: &[f32],
    n_classes: usize,
) -> Result<std::slice::ChunksExact<'_, f32>, MetricsError> {
    if probs.is_empty() || n_classes == 0 {
        return Err(MetricsError::Empty("class probabilities"));
    }
    if !probs.len().is_multiple_of(n_classes) {
        return Err(MetricsError::LengthMismatch {
            what: "probabilities vs rows of n_classes",
            left: probs.len(),
            right: n_classes,
        });
    }
    Ok(probs.chunks_exact(n_classes))
}

/// Validates a binary problem and returns (signal count, background count).
fn check_binary(scores: &[f32], is_signal: &[bool]) -> Result<(usize, usize), MetricsError> {
    check_pair("ROC", scores.len(), is_signal.len())?;
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(MetricsError::NonFinite(i));
    }
    let signal = is_signal.iter().filter(|&&s| s).count();
    let background = is_signal.len() - signal;
    if signal == 0 || background == 0 {
        return Err(MetricsError::OneClass { signal, background });
    }
    Ok((signal, background))
}
