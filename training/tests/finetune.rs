//! Fine-tuning end to end (CPU backend): a tiny model learns top tagging from scratch, the
//! kept model is the best epoch's, a resumed run retraces an uninterrupted one, and a frozen
//! backbone really stays frozen.
mod export_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use export_support::{fixture, scratch, toptag_file};
use jettag_train::backend::{Cpu, CpuTrain, DeviceKind};
use jettag_train::checkpoint;
use jettag_train::eval::{run_eval, EvalArgs};
use jettag_train::finetune::infer::{classify, cross_entropy};
use jettag_train::finetune::{self, load_splits, run_finetune, EpochRecord, FinetuneArgs, FinetuneConfig};

fn args(train: Vec<String>, out: &Path) -> FinetuneArgs {
    FinetuneArgs {
        train,
        val: vec![],
        val_fraction: 0.1,
        labels: "label_QCD,label_Tbqq".into(),
        class_names: None,
        init: None,
        scratch: true,
        config: "tiny".into(),
        freeze_backbone: false,
        label_fraction: 1.0,
        epochs: 3,
        batch: 32,
        lr: 1e-3,
        backbone_lr_scale: 1.0,
        weight_decay: 0.01,
        patience: 10,
        seed: 5,
        max_jets: None,
        max_val_jets: None,
        min_epoch_jets: 0,
        out: out.to_path_buf(),
        resume: false,
        device: DeviceKind::Cpu,
        quiet: true,
    }
}

fn eval_args(model: &Path, data: Vec<String>, out: &Path, max_jets: Option<usize>) -> EvalArgs {
    EvalArgs {
        model: model.to_path_buf(),
        data,
        labels: None,
        out: out.to_path_buf(),
        scores: None,
        embedding: false,
        probe: false,
        probe_train: vec![],
        probe_epochs: 30,
        max_jets,
        batch: 256,
        seed: 0,
        device: DeviceKind::Cpu,
        no_save: false,
    }
}

fn records(dir: &Path) -> Vec<EpochRecord> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn path_str(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn tiny_from_scratch_separates_top_from_qcd() {
    let (Some(qcd), Some(top), Some(qcd_test), Some(top_test)) = (
        toptag_file("qcd_train.root"),
        toptag_file("top_train.root"),
        toptag_file("qcd_test.root"),
        toptag_file("top_test.root"),
    ) else {
        eprintln!("SKIP: $JETTAG_DATA/toptag not found");
        return;
    };
    let out = scratch("ft-toptag");
    let mut a = args(vec![path_str(qcd), path_str(top)], &out.join("run"));
    a.max_jets = Some(3000);
    a.epochs = 4;
    let summary = run_finetune::<CpuTrain>(&a, &Default::default()).unwrap();
    eprintln!("{summary:?}");
    assert_eq!(summary.n_train + summary.n_val, 3000);
    let report_path = out.join("report.json");
    let report = run_eval::<CpuTrain>(
        &eval_args(&out.join("run"), vec![path_str(qcd_test), path_str(top_test)], &report_path, Some(2000)),
        &Default::default(),
    )
    .unwrap();
    let b = report.binary.as_ref().unwrap();
    eprintln!("test: accuracy {:.4}, AUC {:.4}, rejection at 0.5: {:?}", report.accuracy, b.auc, b.rejection_at_eff_s_0_5);
    assert_eq!(report.n_jets, 2000);
    assert!(report.class_counts.iter().all(|&c| c >= 800), "{:?}", report.class_counts);
    // Jet mass alone reaches an AUC near 0.9 on this data; a few epochs of a tiny transformer
    // must be clearly better than chance.
    assert!(b.auc > 0.85, "AUC {}", b.auc);
    assert!(report.accuracy > 0.75, "accuracy {}", report.accuracy);
    assert!(b.rejection_at_eff_s_0_5.is_none_or(|r| r > 5.0));
    assert!(Path::new(&report.roc_png).is_file());
    // The report is kept in the run directory for export.
    assert!(out.join("run/last_eval.json").is_file());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_kept_model_is_the_best_epoch_and_resume_retraces_the_run() {
    let out = scratch("ft-best");
    let a = args(vec![path_str(fixture("toptag_small.root"))], &out.join("a"));
    let summary = run_finetune::<CpuTrain>(&a, &Default::default()).unwrap();
    let recs = records(&out.join("a"));
    assert_eq!(recs.len(), 3);
    let best = recs.iter().min_by(|x, y| x.val_loss.total_cmp(&y.val_loss)).unwrap();
    assert_eq!(summary.best_epoch, best.epoch);
    assert_eq!(summary.best_val_loss, best.val_loss);

    // classifier.mpk reproduces the best epoch's validation loss on the same held-out jets.
    let splits = load_splits(&a, &jettag_core::TokenizerConfig::default()).unwrap();
    let (cfg, model) = finetune::load_classifier::<Cpu>(&out.join("a"), &Default::default()).unwrap();
    let logits = classify(&model, &splits.val, 64, cfg.tokenizer.k, &Default::default()).unwrap().logits;
    let loss = cross_entropy(&logits, &splits.val.labels, 2);
    assert!((loss - best.val_loss).abs() < 1e-5, "{loss} vs {}", best.val_loss);

    // Interrupt after epoch 2 (drop the last checkpoint) and resume: the same epochs again.
    let b = out.join("b");
    copy_dir(&out.join("a"), &b);
    std::fs::remove_dir_all(checkpoint::checkpoint_dir(&b, 3)).unwrap();
    let resumed = run_finetune::<CpuTrain>(&FinetuneArgs { out: b.clone(), resume: true, ..a.clone() }, &Default::default()).unwrap();
    let again = records(&b);
    assert_eq!(again.len(), 3);
    for (x, y) in recs.iter().zip(&again) {
        assert_eq!((x.epoch, x.step), (y.epoch, y.step));
        assert!((x.train_loss - y.train_loss).abs() < 1e-6, "epoch {}: {} vs {}", x.epoch, x.train_loss, y.train_loss);
        assert!((x.val_loss - y.val_loss).abs() < 1e-6, "epoch {}: {} vs {}", x.epoch, x.val_loss, y.val_loss);
    }
    assert_eq!(resumed.best_epoch, summary.best_epoch);

    // A finished directory is not overwritten by a new run.
    let err = run_finetune::<CpuTrain>(&a, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("already holds a run"), "{err}");
    std::fs::remove_dir_all(&out).ok();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every float parameter, flattened, in visiting order.
fn flat_params<M: Module<Cpu>>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor<Cpu> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Cpu, D>>) {
            self.0.push(p.val().into_data().iter::<f32>().collect());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// A short pre-training run through the CLI (its argument struct belongs to another module).
fn pretrain_tiny(out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_jettag-train"))
        .args(["pretrain", "--data"])
        .arg(fixture("jetclass_small.root"))
        .args(["--config", "tiny", "--epochs", "1", "--batch", "16", "--max-steps", "4", "--quiet", "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn frozen_backbone_trains_only_the_head_and_probes_work() {
    let out = scratch("ft-frozen");
    let pre = out.join("pre");
    pretrain_tiny(&pre);
    let (_, pretrained) = checkpoint::load_pretrained::<Cpu>(&pre, &Default::default()).unwrap();
    let data = vec![path_str(fixture("toptag_small.root"))];

    let mut a = args(data.clone(), &out.join("frozen"));
    a.scratch = false;
    a.init = Some(pre.clone());
    a.freeze_backbone = true;
    a.label_fraction = 0.5;
    a.min_epoch_jets = 256;
    let summary = run_finetune::<CpuTrain>(&a, &Default::default()).unwrap();
    let cfg: FinetuneConfig = checkpoint::read_json(&out.join("frozen/config.json")).unwrap();
    assert_eq!(cfg.data.train_class_counts, vec![45, 45], "half of 180 jets, balanced");
    assert_eq!(cfg.training.epoch_jets, 256);
    assert_eq!(summary.trainable_params, cfg.model.encoder.d_model * 2 * cfg.model.encoder.d_model + cfg.model.encoder.d_model + cfg.model.encoder.d_model * 2 + 2);
    let (_, frozen) = finetune::load_classifier::<Cpu>(&out.join("frozen"), &Default::default()).unwrap();
    assert_eq!(flat_params(&frozen.encoder), flat_params(&pretrained), "the frozen encoder changed");
    let head0 = finetune::init_classifier::<Cpu>(&cfg, &Default::default()).unwrap();
    assert_ne!(flat_params(&frozen.head), flat_params(&head0.head), "the head did not train");

    // Training on cached features is the same model: the full forward of the saved classifier
    // gives the validation loss recorded for the best epoch.
    let splits = load_splits(&a, &cfg.tokenizer).unwrap();
    let logits = classify(&frozen, &splits.val, 64, 8, &Default::default()).unwrap().logits;
    let loss = cross_entropy(&logits, &splits.val.labels, 2);
    assert!((loss - summary.best_val_loss).abs() < 1e-5, "{loss} vs {}", summary.best_val_loss);

    // Full fine-tuning from the same encoder changes it.
    let mut full = a.clone();
    full.freeze_backbone = false;
    full.epochs = 1;
    full.out = out.join("full");
    run_finetune::<CpuTrain>(&full, &Default::default()).unwrap();
    let (_, tuned) = finetune::load_classifier::<Cpu>(&out.join("full"), &Default::default()).unwrap();
    assert_ne!(flat_params(&tuned.encoder), flat_params(&pretrained));

    // A pre-trained encoder is evaluated through a linear probe on its embedding.
    let mut e = eval_args(&pre, data.clone(), &out.join("probe.json"), None);
    let err = run_eval::<CpuTrain>(&e, &Default::default()).unwrap_err().to_string();
    assert!(err.contains("--probe"), "{err}");
    e.probe = true;
    e.probe_train = data;
    e.labels = Some("label_QCD,label_Tbqq".into());
    let report = run_eval::<CpuTrain>(&e, &Default::default()).unwrap();
    assert_eq!(report.kind, "linear-probe");
    let probe = report.probe.as_ref().unwrap();
    assert_eq!(probe.n_train, 200);
    // Trained and evaluated on the same jets, the probe fits them better than chance.
    assert!(probe.train_accuracy > 0.55, "{probe:?}");
    assert!((report.accuracy - probe.train_accuracy).abs() < 1e-9, "same jets, same accuracy");
    std::fs::remove_dir_all(&out).ok();
}
