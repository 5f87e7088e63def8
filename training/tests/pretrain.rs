//! End-to-end pre-training tests on real jets (CPU backend).
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use jettag_train::backend::{Cpu, CpuTrain, DeviceKind};
use jettag_train::checkpoint::{self, load_pretrained};
use jettag_train::jepa::MaskingStrategy;
use jettag_train::model::ModelInput;
use jettag_train::pretrain::{run_pretrain, PretrainArgs, PretrainSummary};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/jetclass_small.root")
}

/// `$JETTAG_DATA/jetclass`, else `../shared/data/jetclass` next to the workspace.
fn jetclass_dir() -> Option<PathBuf> {
    let base = std::env::var_os("JETTAG_DATA").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared/data"));
    let dir = base.join("jetclass");
    dir.join("qcd_znn_train.root").is_file().then_some(dir)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jettag-pretrain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn args(data: Vec<String>, out: &Path, epochs: usize, batch: usize, max_jets: usize) -> PretrainArgs {
    PretrainArgs {
        data,
        config: "tiny".into(),
        epochs,
        batch,
        out: out.to_path_buf(),
        seed: 3,
        lr: 1e-3,
        warmup_steps: None,
        weight_decay: 0.05,
        resume: false,
        max_jets: Some(max_jets),
        device: DeviceKind::Cpu,
        registers: None,
        targets: 4,
        masking: MaskingStrategy::Contiguous,
        no_pair_bias: false,
        shuffle_buffer: 256,
        keep_checkpoints: 2,
        max_steps: None,
        quiet: true,
    }
}

fn run(a: &PretrainArgs) -> PretrainSummary {
    run_pretrain::<CpuTrain>(a, &Default::default()).unwrap()
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn tiny_pretraining_lowers_the_loss_without_collapse() {
    // 300 steps of 16 jets: on the shared JetClass files (800 jets, 6 epochs) or, on a fresh
    // clone without them, on the 200-jet fixture (24 epochs).
    let (data, epochs, max_jets) = match jetclass_dir() {
        Some(dir) => (format!("{}/*_train.root", dir.display()), 6, 800),
        None => {
            eprintln!("JetClass data not found: pre-training on the committed fixture instead");
            (fixture().display().to_string(), 24, 200)
        }
    };
    let out = scratch("falls");
    let summary = run(&args(vec![data], &out, epochs, 16, max_jets));
    let r = &summary.records;
    assert_eq!(summary.steps, 300);
    assert_eq!(r.len(), 300);
    let first = mean(r[..10].iter().map(|x| x.loss));
    let last = mean(r[r.len() - 20..].iter().map(|x| x.loss));
    let min_std = r[r.len() - 50..].iter().map(|x| x.target_std).fold(f64::INFINITY, f64::min);
    eprintln!("loss {first:.4} -> {last:.4}, final target std >= {min_std:.4}, {:.0} jets/s", summary.jets_per_second);
    assert!(last < 0.5 * first, "loss fell only from {first} to {last}");
    assert!(min_std > 0.01, "target embeddings collapsed: std {min_std}");
    // The schedules did what the log says: warm-up, decay, momentum rising to 1.
    assert!(r[0].lr < r[20].lr && r[299].lr < r[100].lr);
    assert!((r[0].ema_momentum - 0.996).abs() < 1e-9 && r[299].ema_momentum > 0.9999);

    // Run directory contents.
    for f in ["config.json", "encoder.mpk", "metrics.jsonl", "loss.png"] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 300);
    let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!((run["steps"].as_u64(), run["epochs"].as_u64(), run["jets_seen"].as_u64()), (Some(300), Some(epochs as u64), Some(r.iter().map(|x| x.jets as u64).sum())));
    assert!(run["seconds"].as_f64().unwrap() > 0.0 && run["encoder_params"].as_u64() == Some(summary.encoder_params as u64));
    let kept: Vec<usize> = checkpoint::list_checkpoints(&out).unwrap().into_iter().map(|(e, _)| e).collect();
    assert_eq!(kept, vec![epochs - 1, epochs], "two newest epoch checkpoints are kept");

    // The saved backbone loads and tells jets apart.
    let device = Default::default();
    let (cfg, encoder) = load_pretrained::<Cpu>(&out, &device).unwrap();
    assert_eq!(cfg.model.name, "tiny");
    let jets: Vec<_> = jettag_core::JetReader::open(fixture(), Default::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .jets
        .into_iter()
        .take(4)
        .map(|j| jettag_core::tokenize(&j, &cfg.tokenizer).unwrap())
        .collect();
    let refs: Vec<_> = jets.iter().collect();
    let input = ModelInput::<Cpu>::from_batch(&jettag_core::collate(&refs, cfg.tokenizer.k), &device).unwrap();
    let emb = encoder.embedding(&input).into_data().to_vec::<f32>().unwrap();
    assert!(emb.iter().all(|v| v.is_finite()));
    let d = cfg.model.encoder.d_model;
    assert!(emb[..d].iter().zip(&emb[d..2 * d]).any(|(a, b)| (a - b).abs() > 1e-3));
    std::fs::remove_dir_all(&out).unwrap();
}

/// Every float parameter of a module, in visiting order.
fn weights<M: Module<Cpu>>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor<Cpu> for Collect {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Cpu, D>>) {
            self.0.push(p.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    assert!(!c.0.is_empty());
    c.0
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_seed_fixes_the_run_and_resume_continues_it_exactly() {
    let data = vec![fixture().display().to_string()];
    let (a_dir, b_dir, c_dir, d_dir) = (scratch("a"), scratch("b"), scratch("c"), scratch("d"));
    let a = run(&args(data.clone(), &a_dir, 2, 16, 64));
    assert_eq!(a.steps, 8);
    let b = run(&args(data.clone(), &b_dir, 2, 16, 64));
    assert_eq!(a.records, b.records, "same seed, same run");
    // Weight files carry random parameter ids, so compare the loaded values.
    let encoder = |d: &Path| weights(&load_pretrained::<Cpu>(d, &Default::default()).unwrap().1);
    assert!(encoder(&a_dir) == encoder(&b_dir), "same seed, same weights");

    // Pretend the first run died during epoch 2: its last checkpoint is epoch 1.
    copy_dir(&a_dir, &c_dir);
    std::fs::remove_dir_all(c_dir.join("checkpoints/epoch-0002")).unwrap();
    std::fs::remove_file(c_dir.join("encoder.mpk")).unwrap();
    let mut resume = args(data.clone(), &c_dir, 2, 16, 64);
    resume.resume = true;
    let c = run(&resume);
    assert_eq!(c.records, a.records, "resumed run must reproduce the uninterrupted one");
    assert!(encoder(&c_dir) == encoder(&a_dir), "resumed run must end with the same weights");

    // A different seed is a different run.
    let mut other = args(data.clone(), &d_dir, 1, 16, 64);
    other.seed = 4;
    let d = run(&other);
    assert_ne!(d.records[0].loss, a.records[0].loss);

    // Refusals: a fresh run into a used directory, a resume with other settings.
    let err = run_pretrain::<CpuTrain>(&args(data.clone(), &a_dir, 2, 16, 64), &Default::default()).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let mut changed = args(data, &a_dir, 2, 8, 64);
    changed.resume = true;
    let err = run_pretrain::<CpuTrain>(&changed, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("different settings"), "{err}");
    for d in [a_dir, b_dir, c_dir, d_dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn ablation_switches_reach_the_model() {
    let data = vec![fixture().display().to_string()];
    let out = scratch("ablation");
    let mut a = args(data, &out, 1, 16, 32);
    a.registers = Some(0);
    a.no_pair_bias = true;
    a.masking = MaskingStrategy::Random;
    a.targets = 2;
    let s = run(&a);
    let cfg: checkpoint::PretrainConfig = checkpoint::read_json(&out.join("config.json")).unwrap();
    assert_eq!(cfg.model.encoder.n_registers, 0);
    assert!(!cfg.model.encoder.pair_bias);
    assert_eq!(cfg.masking.strategy, MaskingStrategy::Random);
    assert_eq!(cfg.masking.n_targets, 2);
    // Registers (4·32) and the pair-bias MLP (4·16+16+16·4+4) are gone from the encoder.
    let full = {
        let out2 = scratch("ablation-full");
        let s2 = run(&args(vec![fixture().display().to_string()], &out2, 1, 16, 32));
        std::fs::remove_dir_all(out2).unwrap();
        s2.encoder_params
    };
    assert_eq!(full - s.encoder_params, 4 * 32 + (4 * 16 + 16) + (16 * 4 + 4));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_inputs_are_errors() {
    let out = scratch("bad");
    let missing = args(vec!["/nonexistent/*.root".into()], &out, 1, 16, 10);
    assert!(run_pretrain::<CpuTrain>(&missing, &Default::default()).is_err());
    let mut unknown = args(vec![fixture().display().to_string()], &out, 1, 16, 10);
    unknown.config = "enormous".into();
    let err = run_pretrain::<CpuTrain>(&unknown, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("enormous"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}
