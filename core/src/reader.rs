//! Reading JetClass-schema ROOT files (tree `tree`) in chunks with oxyroot.
//!
//! oxyroot's branch iterators borrow the tree they come from, and its tree is not `Send`, so
//! each [`JetReader`] runs one producer thread that owns the file, walks the branches basket by
//! basket and sends chunks through a bounded channel (two chunks ahead at most). Decoding thus
//! overlaps with the consumer's work, memory stays bounded by the chunk size, and a panic inside
//! oxyroot on a malformed file is caught in that thread and becomes a [`ReadError`].
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use oxyroot::{ReaderTree, RootFile, Slice};

use crate::{Jet, ReadError};

/// Name of the tree in JetClass-schema files.
pub const TREE: &str = "tree";
/// The four jagged constituent branches, in (px, py, pz, E) order.
pub const P4_BRANCHES: [&str; 4] = ["part_px", "part_py", "part_pz", "part_energy"];

/// Which label branches define the classes, in class-index order.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSet {
    pub branches: Vec<String>,
}

impl LabelSet {
    /// JetClass's ten classes in the order of the JetClass paper.
    pub fn jetclass() -> Self {
        Self::parse("label_QCD,label_Hbb,label_Hcc,label_Hgg,label_H4q,label_Hqql,label_Zqq,label_Wqq,label_Tbqq,label_Tbl")
    }
    pub fn toptag() -> Self {
        Self::parse("label_QCD,label_Tbqq")
    }
    pub fn qg() -> Self {
        Self::parse("label_quark,label_gluon")
    }
    /// Comma-separated branch names.
    pub fn parse(s: &str) -> Self {
        Self { branches: s.split(',').map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect() }
    }
}

#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// `None`: labels are not read (pre-training, inference).
    pub labels: Option<LabelSet>,
    /// Jets per chunk (0 is treated as 1).
    pub chunk_size: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self { labels: None, chunk_size: 4096 }
    }
}

/// A chunk of consecutive jets from one file.
#[derive(Debug, Clone)]
pub struct JetChunk {
    /// Index of the first jet of the chunk in its file.
    pub start: usize,
    pub jets: Vec<Jet>,
}

/// Messages from the producer thread: first the jet count (or why the file cannot be read),
/// then chunks; the channel closes after the last chunk or the first error.
enum Msg {
    Opened(usize),
    Chunk(Result<JetChunk, ReadError>),
}

/// Streams a file's jets in chunks so that a large dataset never sits in memory.
pub struct JetReader {
    rx: Receiver<Msg>,
    n_jets: usize,
    done: bool,
}

impl JetReader {
    /// Opens `path`, checks that the tree and all needed branches exist (naming the file and
    /// branch otherwise).
    pub fn open(path: impl AsRef<std::path::Path>, cfg: ReaderConfig) -> Result<Self, ReadError> {
        let path = path.as_ref().to_path_buf();
        let file = path.display().to_string();
        let (tx, rx) = sync_channel(2);
        let thread_file = file.clone();
        std::thread::Builder::new()
            .name("jettag-reader".into())
            .spawn(move || produce(&path, &thread_file, &cfg, &tx))
            .map_err(|e| ReadError::Open { file: file.clone(), reason: format!("cannot start reader thread: {e}") })?;
        match rx.recv() {
            Ok(Msg::Opened(n_jets)) => Ok(Self { rx, n_jets, done: false }),
            Ok(Msg::Chunk(Err(e))) => Err(e),
            Ok(Msg::Chunk(Ok(_))) | Err(_) => {
                Err(ReadError::Open { file, reason: "reader thread ended before reporting the jet count".into() })
            }
        }
    }

    /// Reads several files one after another (see [`expand_paths`] for globs).
    pub fn open_many(paths: Vec<PathBuf>, cfg: ReaderConfig) -> JetFiles {
        JetFiles { paths, cfg, next: 0, current: None, failed: false }
    }

    /// Number of jets (entries) in the file.
    pub fn n_jets(&self) -> usize {
        self.n_jets
    }
}

impl Iterator for JetReader {
    type Item = Result<JetChunk, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rx.recv() {
            Ok(Msg::Chunk(r)) => {
                self.done = r.is_err();
                Some(r)
            }
            Ok(Msg::Opened(_)) | Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

/// Jets from several files in sequence, chunk by chunk; stops after the first error.
pub struct JetFiles {
    paths: Vec<PathBuf>,
    cfg: ReaderConfig,
    next: usize,
    current: Option<JetReader>,
    failed: bool,
}

impl JetFiles {
    /// The file the most recent chunk came from.
    pub fn current_file(&self) -> Option<&Path> {
        self.next.checked_sub(1).and_then(|i| self.paths.get(i)).map(PathBuf::as_path)
    }

    /// Total number of jets in all files (reads only the tree headers).
    pub fn total_jets(&self) -> Result<usize, ReadError> {
        self.paths.iter().map(n_jets_in).sum()
    }
}

impl Iterator for JetFiles {
    type Item = Result<JetChunk, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(reader) = &mut self.current {
                match reader.next() {
                    Some(r) => {
                        self.failed = r.is_err();
                        return Some(r);
                    }
                    None => self.current = None,
                }
            }
            let path = self.paths.get(self.next)?;
            self.next += 1;
            match JetReader::open(path, self.cfg.clone()) {
                Ok(r) => self.current = Some(r),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Expands glob patterns (plain paths pass through) into a sorted, de-duplicated list per
/// pattern, in pattern order. A directory (given or matched) stands for the `*.root` files
/// directly inside it, so `--data ../shared/data/jetclass` reads the ten class files. A pattern
/// that matches nothing, or a directory without ROOT files, is an error naming it.
pub fn expand_paths<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let pattern = pattern.as_ref();
        let open_err = |reason: String| ReadError::Open { file: pattern.to_string(), reason };
        let mut matched: Vec<PathBuf> = Vec::new();
        for path in glob::glob(pattern).map_err(|e| open_err(format!("bad glob pattern: {e}")))? {
            let path = path.map_err(|e| open_err(e.to_string()))?;
            if path.is_dir() {
                let inner = root_files_in(&path).map_err(|e| open_err(e.to_string()))?;
                if inner.is_empty() {
                    return Err(open_err(format!("directory {} holds no .root file", path.display())));
                }
                matched.extend(inner);
            } else {
                matched.push(path);
            }
        }
        if matched.is_empty() {
            return Err(open_err("no file matches".into()));
        }
        matched.sort();
        for p in matched {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The `*.root` files directly inside `dir` (not recursive).
fn root_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "root") {
            files.push(path);
        }
    }
    Ok(files)
}

/// Number of jets in a file, reading only the tree header.
pub fn n_jets_in(path: impl AsRef<Path>) -> Result<usize, ReadError> {
    let file = path.as_ref().display().to_string();
    guarded(&file, "", || {
        let mut f = open_file(path.as_ref(), &file)?;
        let tree = open_tree(&mut f, &file)?;
        Ok(tree.entries().max(0) as usize)
    })
}

/// Names and C++ type names (as oxyroot spells them, e.g. `float[]`, `vector<float>`, `bool`)
/// of the top-level branches of the file's tree.
pub fn branch_types(path: impl AsRef<Path>) -> Result<Vec<(String, String)>, ReadError> {
    let file = path.as_ref().display().to_string();
    guarded(&file, "", || {
        let mut f = open_file(path.as_ref(), &file)?;
        let tree = open_tree(&mut f, &file)?;
        Ok(tree.branches().map(|b| (b.name().to_string(), b.item_type_name())).collect())
    })
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning an oxyroot panic into a `Malformed` error for `file`/`branch`.
fn guarded<T>(file: &str, branch: &str, f: impl FnOnce() -> Result<T, ReadError>) -> Result<T, ReadError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(ReadError::Malformed {
            file: file.into(),
            branch: if branch.is_empty() { "(tree structure)".into() } else { branch.into() },
            reason: format!("ROOT decoding failed: {}", panic_message(p)),
        })
    })
}

fn open_file(path: &Path, file: &str) -> Result<RootFile, ReadError> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(ReadError::Open { file: file.into(), reason: e.to_string() });
    }
    // oxyroot asserts on the magic bytes (a panic, caught by `guarded` but with a cryptic
    // message and the panic banner on stderr); check them here for a plain error instead.
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    if let Err(e) = read {
        return Err(ReadError::Open { file: file.into(), reason: format!("not a ROOT file (cannot read its header: {e})") });
    }
    if &magic != b"root" {
        return Err(ReadError::Open { file: file.into(), reason: "not a ROOT file (no 'root' magic bytes at the start)".into() });
    }
    RootFile::open(path).map_err(|e| ReadError::Open { file: file.into(), reason: format!("not a readable ROOT file: {e}") })
}

fn open_tree(f: &mut RootFile, file: &str) -> Result<ReaderTree, ReadError> {
    f.get_tree(TREE).map_err(|_| ReadError::NoTree { file: file.into(), tree: TREE.into() })
}

type Column<'a, T> = Box<dyn Iterator<Item = T> + 'a>;

/// A jagged float branch in either storage form, converted to `Vec<f32>` per jet.
fn jagged_column<'a>(tree: &'a ReaderTree, name: &str, file: &str, n_jets: usize) -> Result<Column<'a, Vec<f32>>, ReadError> {
    let branch = tree.branch(name).ok_or_else(|| ReadError::MissingBranch { file: file.into(), branch: name.into() })?;
    let malformed = |reason: String| ReadError::Malformed { file: file.into(), branch: name.into(), reason };
    check_entries(branch.entries(), n_jets).map_err(malformed)?;
    let ty = branch.item_type_name();
    let type_err = |e| malformed(format!("{e}"));
    let col: Column<'a, Vec<f32>> = match ty.as_str() {
        "float[]" => Box::new(branch.as_iter::<Slice<f32>>().map_err(type_err)?.map(Slice::into_vec)),
        "vector<float>" => Box::new(branch.as_iter::<Vec<f32>>().map_err(type_err)?),
        "double[]" => Box::new(
            branch.as_iter::<Slice<f64>>().map_err(type_err)?.map(|s| s.into_vec().into_iter().map(|v| v as f32).collect()),
        ),
        "vector<double>" => {
            Box::new(branch.as_iter::<Vec<f64>>().map_err(type_err)?.map(|v| v.into_iter().map(|v| v as f32).collect()))
        }
        other => {
            return Err(malformed(format!(
                "expected a jagged float branch (float[] counted array or std::vector<float>), found '{other}'"
            )))
        }
    };
    Ok(col)
}

/// A scalar label branch of any numeric or bool type, as f64 per jet.
fn label_column<'a>(tree: &'a ReaderTree, name: &str, file: &str, n_jets: usize) -> Result<Column<'a, f64>, ReadError> {
    let branch = tree.branch(name).ok_or_else(|| ReadError::MissingBranch { file: file.into(), branch: name.into() })?;
    let malformed = |reason: String| ReadError::Malformed { file: file.into(), branch: name.into(), reason };
    check_entries(branch.entries(), n_jets).map_err(malformed)?;
    let ty = branch.item_type_name();
    let type_err = |e| malformed(format!("{e}"));
    macro_rules! numeric {
        ($t:ty) => {
            Box::new(branch.as_iter::<$t>().map_err(type_err)?.map(|v| v as f64))
        };
    }
    let col: Column<'a, f64> = match ty.as_str() {
        "float" => numeric!(f32),
        "double" => numeric!(f64),
        "int8_t" => numeric!(i8),
        "uint8_t" => numeric!(u8),
        "int16_t" => numeric!(i16),
        "uint16_t" => numeric!(u16),
        "int32_t" => numeric!(i32),
        "uint32_t" => numeric!(u32),
        "int64_t" => numeric!(i64),
        "uint64_t" => numeric!(u64),
        "bool" => Box::new(branch.as_iter::<bool>().map_err(type_err)?.map(|v| if v { 1.0 } else { 0.0 })),
        other => return Err(malformed(format!("expected a scalar number or bool label, found '{other}'"))),
    };
    Ok(col)
}

fn check_entries(entries: i64, n_jets: usize) -> Result<(), String> {
    if entries != n_jets as i64 {
        return Err(format!("has {entries} entries, the tree has {n_jets}"));
    }
    Ok(())
}

/// Next value of a column, converting a premature end or a decoding panic into an error.
fn next_of<T>(col: &mut Column<'_, T>, file: &str, branch: &str, jet: usize) -> Result<T, ReadError> {
    match catch_unwind(AssertUnwindSafe(|| col.next())) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(ReadError::Malformed { file: file.into(), branch: branch.into(), reason: format!("ends after {jet} entries") }),
        Err(p) => Err(ReadError::Malformed {
            file: file.into(),
            branch: branch.into(),
            reason: format!("jet {jet}: ROOT decoding failed: {}", panic_message(p)),
        }),
    }
}

/// Class index of a jet from its label values: exactly one must be 1, the rest 0.
fn one_hot(values: &[f64], names: &[String], file: &str, jet: usize) -> Result<usize, ReadError> {
    let mut found = None;
    for (i, &v) in values.iter().enumerate() {
        if v == 1.0 {
            if let Some(first) = found {
                return Err(ReadError::Malformed {
                    file: file.into(),
                    branch: names[i].clone(),
                    reason: format!("jet {jet}: several labels set ({} and {})", names[first], names[i]),
                });
            }
            found = Some(i);
        } else if v != 0.0 {
            return Err(ReadError::Malformed {
                file: file.into(),
                branch: names[i].clone(),
                reason: format!("jet {jet}: label value {v} is neither 0 nor 1"),
            });
        }
    }
    found.ok_or_else(|| ReadError::Malformed {
        file: file.into(),
        branch: names.join(","),
        reason: format!("jet {jet}: no label set"),
    })
}

/// Producer thread body: everything that touches oxyroot runs here, under `catch_unwind`.
fn produce(path: &Path, file: &str, cfg: &ReaderConfig, tx: &SyncSender<Msg>) {
    let result = guarded(file, "", || produce_chunks(path, file, cfg, tx));
    if let Err(e) = result {
        let _ = tx.send(Msg::Chunk(Err(e)));
    }
}

fn produce_chunks(path: &Path, file: &str, cfg: &ReaderConfig, tx: &SyncSender<Msg>) -> Result<(), ReadError> {
    let mut f = open_file(path, file)?;
    let tree = open_tree(&mut f, file)?;
    let n_jets = tree.entries().max(0) as usize;

    let mut p4_cols = Vec::with_capacity(4);
    for name in P4_BRANCHES {
        p4_cols.push(guarded(file, name, || jagged_column(&tree, name, file, n_jets))?);
    }
    let label_names: Vec<String> = cfg.labels.as_ref().map(|l| l.branches.clone()).unwrap_or_default();
    if cfg.labels.is_some() && label_names.is_empty() {
        return Err(ReadError::Malformed { file: file.into(), branch: "(labels)".into(), reason: "empty label list".into() });
    }
    let mut label_cols = Vec::with_capacity(label_names.len());
    for name in &label_names {
        label_cols.push(guarded(file, name, || label_column(&tree, name, file, n_jets))?);
    }
    if tx.send(Msg::Opened(n_jets)).is_err() {
        return Ok(());
    }

    let chunk_size = cfg.chunk_size.max(1);
    let mut label_values = vec![0.0f64; label_names.len()];
    let mut start = 0;
    while start < n_jets {
        let end = (start + chunk_size).min(n_jets);
        let mut jets = Vec::with_capacity(end - start);
        for i in start..end {
            let mut comps: [Vec<f32>; 4] = Default::default();
            for (c, col) in p4_cols.iter_mut().enumerate() {
                comps[c] = next_of(col, file, P4_BRANCHES[c], i)?;
            }
            for c in 1..4 {
                if comps[c].len() != comps[0].len() {
                    return Err(ReadError::Malformed {
                        file: file.into(),
                        branch: P4_BRANCHES[c].into(),
                        reason: format!("jet {i}: {} values, but part_px has {}", comps[c].len(), comps[0].len()),
                    });
                }
            }
            let label = if label_cols.is_empty() {
                None
            } else {
                for (l, col) in label_cols.iter_mut().enumerate() {
                    label_values[l] = next_of(col, file, &label_names[l], i)?;
                }
                Some(one_hot(&label_values, &label_names, file, i)?)
            };
            let [px, py, pz, energy] = comps;
            jets.push(Jet { px, py, pz, energy, label });
        }
        if tx.send(Msg::Chunk(Ok(JetChunk { start, jets }))).is_err() {
            return Ok(()); // the reader was dropped
        }
        start = end;
    }
    Ok(())
}
