//! Metric functions against known cases: a perfect classifier, random and constant scores, a
//! ROC worked out by hand, and a brute-force numpy cross-check.

use std::process::Command;

use jettag_train::metrics::plot::{draw_roc_png, RocSeries, ROC_PLOT_SIZE};
use jettag_train::metrics::{
    accuracy, argmax_rows, background_efficiency_at, background_rejection_at, binary_metrics,
    confusion_matrix, macro_average, one_vs_rest_auc, pairwise_discriminant, roc_auc, roc_curve,
    MetricsError,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// xorshift64*, seeded: reproducible "random" scores.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[test]
fn perfect_classifier() {
    let scores = [0.9, 0.8, 0.75, 0.2, 0.1, 0.05];
    let truth = [true, true, true, false, false, false];
    let (m, curve) = binary_metrics(&scores, &truth).unwrap();
    assert_eq!(m.auc, 1.0);
    assert_eq!(m.accuracy, 1.0);
    // No background passes until every signal jet is in: infinite rejection.
    assert_eq!(m.rejection_at_eff_s_0_5, None);
    assert_eq!(m.rejection_at_eff_s_0_3, None);
    assert_eq!(background_efficiency_at(&curve, 1.0).unwrap(), 0.0);
    // Infinity is written as JSON null.
    let json = serde_json::to_value(&m).unwrap();
    assert!(json["rejection_at_eff_s_0_5"].is_null());
    assert_eq!(json["auc"], 1.0);

    // Reversed scores: AUC 0.
    let reversed: Vec<f32> = scores.iter().map(|s| 1.0 - s).collect();
    assert_eq!(roc_auc(&reversed, &truth).unwrap(), 0.0);
}

#[test]
fn identical_scores_are_exactly_half() {
    let scores = [0.3f32; 7];
    let truth = [true, false, false, true, false, true, false];
    assert_eq!(roc_auc(&scores, &truth).unwrap(), 0.5);
    // One tie group: a single diagonal step from (0, 0) to (1, 1).
    let curve = roc_curve(&scores, &truth).unwrap();
    assert_eq!(curve.fpr, vec![0.0, 1.0]);
    assert_eq!(curve.tpr, vec![0.0, 1.0]);
    // On the diagonal ε_B = ε_S.
    assert!(close(background_efficiency_at(&curve, 0.3).unwrap(), 0.3));
    assert!(close(
        background_rejection_at(&curve, 0.5).unwrap().unwrap(),
        2.0
    ));
}

#[test]
fn random_scores_give_auc_near_half() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let n = 40_000;
    let scores: Vec<f32> = (0..n).map(|_| rng.uniform()).collect();
    let truth: Vec<bool> = (0..n).map(|_| rng.uniform() < 0.4).collect();
    let auc = roc_auc(&scores, &truth).unwrap();
    // Standard error of the AUC under the null: sqrt((n_s + n_b + 1) / (12 n_s n_b)) ≈ 0.003.
    assert!((auc - 0.5).abs() < 0.015, "auc {auc}");
    // A random tagger rejects about 1/ε_S.
    let curve = roc_curve(&scores, &truth).unwrap();
    let r = background_rejection_at(&curve, 0.5).unwrap().unwrap();
    assert!((r - 2.0).abs() < 0.1, "rejection {r}");
}

/// Signal scores 0.9, 0.7, 0.6; background scores 0.8, 0.7, 0.2 (one signal/background tie).
///
/// Pairs (signal beats background): 0.9 beats all three (3); 0.7 loses to 0.8, ties 0.7 (½),
/// beats 0.2 (1.5); 0.6 beats only 0.2 (1). AUC = 5.5 / 9 = 11/18.
///
/// ROC points (ε_B, ε_S), lowering the threshold: +∞ → (0, 0); 0.9 → (0, 1/3);
/// 0.8 → (1/3, 1/3); 0.7 (both tied jets at once) → (2/3, 2/3); 0.6 → (2/3, 1); 0.2 → (1, 1).
/// Trapezoids: 1/9 + 1/6 + 1/3 = 11/18, the same as Mann-Whitney.
///
/// ε_S = 0.5 lies on the segment (1/3, 1/3)–(2/3, 2/3): ε_B = 1/3 + (1/3)(0.5 − 1/3)/(1/3) = 0.5,
/// rejection 2. ε_S = 0.3 lies on (0, 0)–(0, 1/3): ε_B = 0, rejection infinite.
/// ε_S = 0.9 lies on (2/3, 2/3)–(2/3, 1): ε_B = 2/3, rejection 1.5.
/// Accuracy with score ≥ 0.5 as signal: 0.9, 0.7, 0.6 (signal) and 0.2 (background) right,
/// 0.8 and 0.7 (background) wrong: 4/6.
#[test]
fn hand_worked_roc() {
    let scores = [0.9, 0.8, 0.7, 0.7, 0.6, 0.2];
    let truth = [true, false, true, false, true, false];
    let curve = roc_curve(&scores, &truth).unwrap();
    let third = 1.0 / 3.0;
    let expected_fpr = [0.0, 0.0, third, 2.0 * third, 2.0 * third, 1.0];
    let expected_tpr = [0.0, third, third, 2.0 * third, 1.0, 1.0];
    assert_eq!(curve.fpr.len(), 6);
    for i in 0..6 {
        assert!(
            close(curve.fpr[i], expected_fpr[i]),
            "fpr[{i}] = {}",
            curve.fpr[i]
        );
        assert!(
            close(curve.tpr[i], expected_tpr[i]),
            "tpr[{i}] = {}",
            curve.tpr[i]
        );
    }
    assert_eq!(curve.thresholds[0], None);
    assert_eq!(curve.thresholds[3], Some(f64::from(0.7f32)));

    let auc = roc_auc(&scores, &truth).unwrap();
    assert!(close(auc, 11.0 / 18.0), "auc {auc}");
    assert!(close(trapezoid(&curve.fpr, &curve.tpr), 11.0 / 18.0));

    assert!(close(background_efficiency_at(&curve, 0.5).unwrap(), 0.5));
    assert!(close(
        background_rejection_at(&curve, 0.5).unwrap().unwrap(),
        2.0
    ));
    assert_eq!(background_rejection_at(&curve, 0.3).unwrap(), None);
    assert!(close(
        background_rejection_at(&curve, 0.9).unwrap().unwrap(),
        1.5
    ));

    let (m, _) = binary_metrics(&scores, &truth).unwrap();
    assert!(close(m.accuracy, 4.0 / 6.0));
    assert_eq!(m.n_jets, 6);
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

#[test]
fn multi_class_metrics() {
    // 3 classes, 5 jets; rows are softmax outputs.
    let probs = [
        0.7, 0.2, 0.1, // class 0
        0.1, 0.6, 0.3, // class 1
        0.2, 0.3, 0.5, // class 2
        0.3, 0.4, 0.3, // class 0, predicted 1
        0.1, 0.1, 0.8, // class 2
    ];
    let labels = [0, 1, 2, 0, 2];
    let predicted = argmax_rows(&probs, 3).unwrap();
    assert_eq!(predicted, vec![0, 1, 2, 1, 2]);
    assert!(close(accuracy(&predicted, &labels).unwrap(), 0.8));
    assert_eq!(
        confusion_matrix(&predicted, &labels, 3).unwrap(),
        vec![vec![1, 1, 0], vec![0, 1, 0], vec![0, 0, 2]]
    );
    // One-vs-rest scores of the first set separate perfectly:
    // class 0: signal {0.7, 0.3} vs background {0.1, 0.2, 0.1};
    // class 1: signal {0.6} vs {0.2, 0.3, 0.4, 0.1}; class 2: signal {0.5, 0.8} vs {0.1, 0.3, 0.3}.
    let aucs = one_vs_rest_auc(&probs, &labels, 3).unwrap();
    assert_eq!(aucs, vec![Some(1.0), Some(1.0), Some(1.0)]);

    // A second set where class 1 is imperfect: its probabilities are 0.6, 0.3 (label 1) and
    // 0.4, 0.3, 0.1 (label 0). Pairs: 0.6 beats all three (3); 0.3 loses to 0.4, ties 0.3 (½),
    // beats 0.1 (1.5) → 4.5 / 6 = 0.75.
    let probs2 = [
        0.2, 0.6, 0.2, // label 1
        0.4, 0.3, 0.3, // label 1
        0.5, 0.4, 0.1, // label 0
        0.6, 0.3, 0.1, // label 0
        0.8, 0.1, 0.1, // label 0
    ];
    let labels2 = [1, 1, 0, 0, 0];
    let aucs2 = one_vs_rest_auc(&probs2, &labels2, 3).unwrap();
    assert!(close(aucs2[1].unwrap(), 0.75));
    // Class 2 never occurs: undefined, and left out of the macro average.
    assert_eq!(aucs2[2], None);
    // Class 0 scores: signal {0.5, 0.6, 0.8} vs background {0.2, 0.4}: 1.
    assert_eq!(aucs2[0], Some(1.0));
    assert!(close(macro_average(&aucs2).unwrap(), 0.875));

    // ParT-style two-class discriminant p_s / (p_s + p_b).
    let d = pairwise_discriminant(&probs2, 3, 1, 0).unwrap();
    assert!((d[0] - 0.75).abs() < 1e-6);
    assert!((d[2] - 0.4 / 0.9).abs() < 1e-6);
}

#[test]
fn bad_input_is_an_error() {
    assert_eq!(
        roc_auc(&[0.1, f32::NAN], &[true, false]),
        Err(MetricsError::NonFinite(1))
    );
    assert!(matches!(
        roc_curve(&[0.1, 0.2], &[true, true]),
        Err(MetricsError::OneClass {
            signal: 2,
            background: 0
        })
    ));
    assert!(matches!(
        accuracy(&[0, 1], &[0]),
        Err(MetricsError::LengthMismatch { .. })
    ));
    assert!(matches!(accuracy(&[], &[]), Err(MetricsError::Empty(_))));
    assert!(matches!(
        confusion_matrix(&[0, 3], &[0, 1], 3),
        Err(MetricsError::ClassOutOfRange { index: 3, .. })
    ));
    assert!(matches!(
        one_vs_rest_auc(&[0.5, 0.5], &[0, 1], 2),
        Err(MetricsError::LengthMismatch { .. })
    ));
    let curve = roc_curve(&[0.1, 0.2], &[true, false]).unwrap();
    assert!(matches!(
        background_rejection_at(&curve, 1.5),
        Err(MetricsError::BadEfficiency(_))
    ));
}

/// AUC and rejections against a brute-force numpy computation on seeded scores with many ties
/// (scores rounded to 2 decimals): all signal/background pairs compared, and ε_B read with
/// `numpy.interp(eff_s, tpr, fpr)` on a tie-grouped ROC.
#[test]
fn matches_numpy_brute_force() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    if !std::path::Path::new(python).exists() {
        eprintln!("SKIP: {python} not found (run `make venv`)");
        return;
    }
    let mut rng = Rng(42);
    // 1201 signal-ish weights so ε_S never lands exactly on 0.5 or 0.3.
    let n = 2400;
    let truth: Vec<bool> = (0..n).map(|i| i % 2 == 0 || i == 1).collect();
    let scores: Vec<f32> = truth
        .iter()
        .map(|&s| {
            let x = rng.uniform() + if s { 0.35 } else { 0.0 };
            (x * 100.0).round() / 100.0
        })
        .collect();
    let script = r#"
import json, sys
import numpy as np
d = json.load(sys.stdin)
s = np.array(d["scores"], dtype=np.float32).astype(np.float64)
y = np.array(d["truth"], dtype=bool)
sig, bkg = s[y], s[~y]
wins = (sig[:, None] > bkg[None, :]).sum() + 0.5 * (sig[:, None] == bkg[None, :]).sum()
auc = wins / (len(sig) * len(bkg))
thr = np.unique(s)[::-1]
tpr = np.concatenate([[0.0], [(sig >= t).mean() for t in thr]])
fpr = np.concatenate([[0.0], [(bkg >= t).mean() for t in thr]])
print(json.dumps({"auc": auc, "eb50": float(np.interp(0.5, tpr, fpr)),
                  "eb30": float(np.interp(0.3, tpr, fpr))}))
"#;
    let input = serde_json::json!({ "scores": scores, "truth": truth }).to_string();
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let curve = roc_curve(&scores, &truth).unwrap();
    let auc = roc_auc(&scores, &truth).unwrap();
    assert!(
        (auc - reference["auc"].as_f64().unwrap()).abs() < 1e-12,
        "auc {auc} vs {reference}"
    );
    let eb50 = background_efficiency_at(&curve, 0.5).unwrap();
    let eb30 = background_efficiency_at(&curve, 0.3).unwrap();
    assert!(
        (eb50 - reference["eb50"].as_f64().unwrap()).abs() < 1e-12,
        "{eb50} vs {reference}"
    );
    assert!(
        (eb30 - reference["eb30"].as_f64().unwrap()).abs() < 1e-12,
        "{eb30} vs {reference}"
    );
    assert!(
        auc > 0.7 && auc < 0.9,
        "the shift makes a moderately good tagger: {auc}"
    );
}

#[test]
fn roc_plot_is_a_png() {
    let dir = std::env::temp_dir().join(format!("jettag-roc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("roc.png");
    let mut rng = Rng(7);
    let truth: Vec<bool> = (0..2000).map(|i| i % 2 == 0).collect();
    let good: Vec<f32> = truth
        .iter()
        .map(|&s| rng.uniform() + if s { 0.6 } else { 0.0 })
        .collect();
    let weak: Vec<f32> = truth
        .iter()
        .map(|&s| rng.uniform() + if s { 0.2 } else { 0.0 })
        .collect();
    let (good_curve, weak_curve) = (
        roc_curve(&good, &truth).unwrap(),
        roc_curve(&weak, &truth).unwrap(),
    );
    draw_roc_png(
        &path,
        "ROC test",
        &[
            RocSeries {
                label: "good",
                curve: &good_curve,
            },
            RocSeries {
                label: "weak",
                curve: &weak_curve,
            },
        ],
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), ROC_PLOT_SIZE);
    // A blank white image compresses to a few hundred bytes; curves, grid and text do not.
    assert!(
        bytes.len() > 10_000,
        "suspiciously small PNG: {} bytes",
        bytes.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
