//! Bad jets and bad files are error values that say what is wrong, never panics.
mod common;

use std::path::PathBuf;

use jettag_core::{tokenize, Jet, JetError, JetReader, LabelSet, ReadError, ReaderConfig, TokenizerConfig};
use oxyroot::{RootFile, WriterTree};

fn jet(p: &[[f32; 4]]) -> Jet {
    Jet::new(p.iter().map(|v| v[0]).collect(), p.iter().map(|v| v[1]).collect(), p.iter().map(|v| v[2]).collect(), p.iter().map(|v| v[3]).collect())
}

const GOOD: [[f32; 4]; 3] = [[10.0, 1.0, 2.0, 10.3], [5.0, -1.0, 0.5, 5.2], [3.0, 0.2, -0.4, 3.1]];

fn err(j: &Jet) -> JetError {
    tokenize(j, &TokenizerConfig::default()).expect_err("must be rejected")
}

#[test]
fn good_jet_is_accepted() {
    assert!(tokenize(&jet(&GOOD), &TokenizerConfig::default()).is_ok());
}

#[test]
fn empty_jet() {
    assert_eq!(err(&Jet::default()), JetError::Empty);
}

#[test]
fn non_finite_values_name_field_and_index() {
    let mut j = jet(&GOOD);
    j.py[2] = f32::NAN;
    let e = err(&j);
    assert!(matches!(e, JetError::NonFinite { field: "py", index: 2, .. }), "{e:?}");
    assert!(e.to_string().contains("py[2]"), "{e}");

    let mut j = jet(&GOOD);
    j.energy[1] = f32::INFINITY;
    assert!(matches!(err(&j), JetError::NonFinite { field: "energy", index: 1, .. }));
    let mut j = jet(&GOOD);
    j.pz[0] = f32::NEG_INFINITY;
    assert!(matches!(err(&j), JetError::NonFinite { field: "pz", index: 0, .. }));
}

#[test]
fn energy_below_momentum() {
    let mut p = GOOD;
    p[1][3] = 4.0; // |p| ≈ 5.12
    let e = err(&jet(&p));
    assert!(matches!(e, JetError::Unphysical { index: 1, .. }), "{e:?}");
    assert!(e.to_string().contains("unphysical"), "{e}");
    p[1][3] = -5.2;
    assert!(matches!(err(&jet(&p)), JetError::Unphysical { index: 1, .. }));
    // A massless particle rounded a few ulp below |p| is rounding, not physics.
    let mut p = GOOD;
    let abs_p = (p[2][0] as f64).hypot(p[2][1] as f64).hypot(p[2][2] as f64);
    p[2][3] = (abs_p * (1.0 - 1e-6)) as f32;
    assert!(tokenize(&jet(&p), &TokenizerConfig::default()).is_ok());
}

#[test]
fn too_many_constituents() {
    let many: Vec<[f32; 4]> = (0..50).map(|i| [1.0 + i as f32, 0.5, 0.1, 2.0 + i as f32]).collect();
    let cfg = TokenizerConfig { max_constituents: 49, ..Default::default() };
    assert_eq!(tokenize(&jet(&many), &cfg).unwrap_err(), JetError::TooManyConstituents { n: 50, limit: 49 });
    let cfg = TokenizerConfig { max_constituents: 50, ..Default::default() };
    assert!(tokenize(&jet(&many), &cfg).is_ok());
}

#[test]
fn length_mismatch() {
    let mut j = jet(&GOOD);
    j.pz.pop();
    assert_eq!(err(&j), JetError::LengthMismatch { px: 3, py: 3, pz: 2, energy: 3 });
}

#[test]
fn zero_pt_particle_and_cancelling_jet() {
    let mut p = GOOD;
    p[0][0] = 0.0;
    p[0][1] = 0.0;
    assert_eq!(err(&jet(&p)), JetError::ZeroPt { index: 0 });
    assert_eq!(err(&jet(&[[3.0, 4.0, 1.0, 6.0], [-3.0, -4.0, 2.0, 6.0]])), JetError::ZeroJetPt);
}

#[test]
fn invalid_config() {
    for cfg in [
        TokenizerConfig { k: 0, ..Default::default() },
        TokenizerConfig { max_tokens: 0, ..Default::default() },
        TokenizerConfig { max_particles: 0, ..Default::default() },
        TokenizerConfig { oversample: f32::NAN, ..Default::default() },
        TokenizerConfig { oversample: 0.0, ..Default::default() },
    ] {
        assert!(matches!(tokenize(&jet(&GOOD), &cfg), Err(JetError::InvalidConfig { .. })), "{cfg:?}");
    }
}

// ---- files ----

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jettag-core-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A tiny tree: three jets with the given jagged branches (all `std::vector<float>`) and
/// scalar float branches.
fn write_tree(path: &PathBuf, tree_name: &str, jagged: &[&str], scalars: &[(&str, [f32; 3])]) {
    let mut f = RootFile::create(path).unwrap();
    let mut tree = WriterTree::new(tree_name);
    for &name in jagged {
        let rows = vec![vec![10.0f32, 5.0], vec![7.0], vec![3.0, 2.0, 1.0]];
        tree.new_branch(name, rows.into_iter());
    }
    for &(name, values) in scalars {
        tree.new_branch(name, values.into_iter());
    }
    tree.write(&mut f).unwrap();
    f.close().unwrap();
}

fn open_err(path: &PathBuf, labels: Option<LabelSet>) -> ReadError {
    match JetReader::open(path, ReaderConfig { labels, chunk_size: 2 }) {
        Err(e) => e,
        Ok(reader) => reader.filter_map(Result::err).next().expect("an error while reading"),
    }
}

const P4: [&str; 4] = ["part_px", "part_py", "part_pz", "part_energy"];

#[test]
fn missing_constituent_branch_names_file_and_branch() {
    let path = temp("no_energy.root");
    write_tree(&path, "tree", &P4[..3], &[]);
    let e = open_err(&path, None);
    assert!(matches!(&e, ReadError::MissingBranch { branch, .. } if branch == "part_energy"), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("no_energy.root") && msg.contains("part_energy"), "{msg}");
}

#[test]
fn missing_label_branch_names_file_and_branch() {
    let path = common::fixture("toptag_small.root");
    let e = open_err(&path, Some(LabelSet::parse("label_QCD,label_Nope")));
    let msg = e.to_string();
    assert!(matches!(e, ReadError::MissingBranch { .. }), "{msg}");
    assert!(msg.contains("toptag_small.root") && msg.contains("label_Nope"), "{msg}");
}

#[test]
fn wrong_branch_type_names_file_and_branch() {
    let path = temp("scalar_pz.root");
    write_tree(&path, "tree", &[P4[0], P4[1], P4[3]], &[("part_pz", [1.0, 2.0, 3.0])]);
    let e = open_err(&path, None);
    let msg = e.to_string();
    assert!(matches!(e, ReadError::Malformed { ref branch, .. } if branch == "part_pz"), "{msg}");
    assert!(msg.contains("scalar_pz.root") && msg.contains("float"), "{msg}");
}

#[test]
fn wrong_tree_name() {
    let path = temp("other_tree.root");
    write_tree(&path, "events", &P4, &[]);
    let e = open_err(&path, None);
    assert!(matches!(e, ReadError::NoTree { .. }), "{e:?}");
    assert!(e.to_string().contains("other_tree.root") && e.to_string().contains("'tree'"));
}

#[test]
fn label_problems_name_file_branch_and_jet() {
    let path = temp("labels.root");
    write_tree(&path, "tree", &P4, &[("label_a", [1.0, 1.0, 0.0]), ("label_b", [0.0, 1.0, 0.0]), ("label_c", [1.0, 0.5, 1.0])]);
    let labels = |s: &str| Some(LabelSet::parse(s));

    // Jet 1 has label_a and label_b set.
    let msg = open_err(&path, labels("label_a,label_b")).to_string();
    assert!(msg.contains("labels.root") && msg.contains("label_b") && msg.contains("jet 1") && msg.contains("several"), "{msg}");
    // With label_a alone, jets 0 and 1 are class 0 and jet 2 has no label set.
    let reader = JetReader::open(&path, ReaderConfig { labels: labels("label_a"), chunk_size: 1 }).unwrap();
    let results: Vec<_> = reader.collect();
    assert_eq!(results.len(), 3, "two good chunks, then the error ends the stream");
    assert_eq!(results[1].as_ref().unwrap().jets[0].label, Some(0));
    let msg = results[2].as_ref().unwrap_err().to_string();
    assert!(msg.contains("label_a") && msg.contains("jet 2") && msg.contains("no label"), "{msg}");
    // A value that is neither 0 nor 1.
    let msg = open_err(&path, labels("label_c")).to_string();
    assert!(msg.contains("label_c") && msg.contains("jet 1") && msg.contains("0.5"), "{msg}");
}

#[test]
fn not_a_root_file() {
    let path = temp("not_root.root");
    std::fs::write(&path, b"this is not a ROOT file at all, just some text\n".repeat(10)).unwrap();
    let e = open_err(&path, None);
    assert!(matches!(e, ReadError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("not_root.root") && e.to_string().contains("not a ROOT file"), "{e}");
    // Shorter than the 4 magic bytes.
    let tiny = temp("tiny.root");
    std::fs::write(&tiny, b"ro").unwrap();
    let e = open_err(&tiny, None);
    assert!(matches!(e, ReadError::Open { .. }) && e.to_string().contains("not a ROOT file"), "{e:?}");

    let missing = temp("does_not_exist.root");
    let e = open_err(&missing, None);
    assert!(matches!(e, ReadError::Open { .. }) && e.to_string().contains("does_not_exist.root"), "{e}");
}

/// Truncated copies of a real file: every read ends in an error naming the file (or, when the
/// cut spares all baskets read, in complete jets), never in a panic or a hang.
#[test]
fn truncated_files_are_errors() {
    let bytes = std::fs::read(common::fixture("toptag_vector.root")).unwrap();
    for frac in [0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99] {
        let path = temp(&format!("truncated_{frac}.root"));
        std::fs::write(&path, &bytes[..(bytes.len() as f64 * frac) as usize]).unwrap();
        match JetReader::open(&path, ReaderConfig { labels: Some(LabelSet::toptag()), chunk_size: 4 }) {
            Err(e) => assert!(e.to_string().contains(&format!("truncated_{frac}.root")), "{e}"),
            Ok(reader) => {
                let mut n = 0;
                for chunk in reader {
                    match chunk {
                        Ok(c) => n += c.jets.len(),
                        Err(e) => {
                            assert!(e.to_string().contains(&format!("truncated_{frac}.root")), "{e}");
                            n = usize::MAX;
                            break;
                        }
                    }
                }
                assert!(n == 20 || n == usize::MAX, "fraction {frac}: {n} jets and no error");
            }
        }
    }
}
