//! Preprocessing throughput on one thread: tokenization (the serving hot path) and reading,
//! measured separately. Input: `$JETTAG_DATA/toptag/top_test.root` (4,000 top jets), falling
//! back to the committed fixture. Criterion reports jets/s as "thrpt".
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jettag_core::{collate, tokenize, Jet, JetReader, ReaderConfig, TokenizerConfig};

fn input() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = std::env::var_os("JETTAG_DATA").map(PathBuf::from).unwrap_or_else(|| workspace.join("../shared/data"));
    let file = data.join("toptag/top_test.root");
    if file.exists() {
        file
    } else {
        eprintln!("{} not found, using the fixture", file.display());
        workspace.join("tests/fixtures/toptag_small.root")
    }
}

fn read_all(path: &PathBuf) -> Vec<Jet> {
    let reader = JetReader::open(path, ReaderConfig::default()).expect("open");
    reader.flat_map(|c| c.expect("chunk").jets).collect()
}

fn bench(c: &mut Criterion) {
    let path = input();
    let jets = read_all(&path);
    let cfg = TokenizerConfig::default();
    eprintln!("{}: {} jets", path.display(), jets.len());

    let mut g = c.benchmark_group("preprocess");
    g.sample_size(10);
    g.throughput(Throughput::Elements(jets.len() as u64));
    g.bench_function("tokenize (jets/s)", |b| {
        b.iter(|| {
            for jet in &jets {
                std::hint::black_box(tokenize(jet, &cfg).expect("valid jet"));
            }
        })
    });
    g.bench_function("read (jets/s)", |b| b.iter(|| std::hint::black_box(read_all(&path).len())));

    let tokenized: Vec<_> = jets.iter().take(256).map(|j| tokenize(j, &cfg).unwrap()).collect();
    let refs: Vec<_> = tokenized.iter().collect();
    g.throughput(Throughput::Elements(refs.len() as u64));
    g.bench_function("collate 256 (jets/s)", |b| {
        b.iter_batched(|| refs.clone(), |r| std::hint::black_box(collate(&r, cfg.k)), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
