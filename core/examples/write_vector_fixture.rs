//! Writes `tests/fixtures/toptag_vector.root`: jets 90..110 of `toptag_small.root` (10 top,
//! 10 QCD) with the constituent branches stored as `std::vector<float>`, the form of the public
//! JetClass files, which uproot cannot write. Labels: `label_QCD` as float, `label_Tbqq` as
//! int32. Run from the workspace root:
//! `cargo run -p jettag-core --example write_vector_fixture`.
use jettag_core::{JetReader, LabelSet, ReaderConfig};
use oxyroot::{RootFile, WriterTree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let src = "tests/fixtures/toptag_small.root";
    let out = "tests/fixtures/toptag_vector.root";
    let cfg = ReaderConfig { labels: Some(LabelSet::toptag()), chunk_size: 1000 };
    let mut jets = Vec::new();
    for chunk in JetReader::open(src, cfg)? {
        jets.extend(chunk?.jets);
    }
    let jets: Vec<_> = jets.into_iter().skip(90).take(20).collect();

    let mut file = RootFile::create(out)?;
    let mut tree = WriterTree::new("tree");
    let col = |f: fn(&jettag_core::Jet) -> Vec<f32>| jets.iter().map(f).collect::<Vec<_>>().into_iter();
    tree.new_branch("part_px", col(|j| j.px.clone()));
    tree.new_branch("part_py", col(|j| j.py.clone()));
    tree.new_branch("part_pz", col(|j| j.pz.clone()));
    tree.new_branch("part_energy", col(|j| j.energy.clone()));
    let labels: Vec<usize> = jets.iter().map(|j| j.label.expect("labelled")).collect();
    tree.new_branch("label_QCD", labels.clone().into_iter().map(|l| if l == 0 { 1.0f32 } else { 0.0 }));
    tree.new_branch("label_Tbqq", labels.into_iter().map(|l| if l == 1 { 1i32 } else { 0 }));
    tree.write(&mut file)?;
    file.close()?;
    println!("wrote {out}: {} jets", jets.len());
    Ok(())
}
