//! Pulls the float parameters of a burn module out as plain `(path, shape, values)`.
//!
//! The exporter rebuilds the forward pass by hand, so it needs each weight by name. A
//! [`ModuleVisitor`] walks the module tree and records burn's own field path
//! (`blocks.0.attn.qkv.weight`; `Vec` elements are their index, `Option` adds nothing), the
//! same names burn uses in its records. Values are read in logical (row-major) order
//! whatever the backend's memory layout, so a `Linear` weight is always `[in, out]`.
//!
//! The exporter *takes* each parameter it writes; [`NamedParams::ensure_all_used`] then lists
//! any it forgot, which would otherwise be a silently wrong graph.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::OnnxError;

/// One parameter's values, row-major, with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    /// The tensor's shape (burn's logical shape).
    pub shape: Vec<usize>,
    /// The values in row-major order, converted to f32.
    pub data: Vec<f32>,
}

/// All float parameters of a module by path, with bookkeeping of which ones the exporter used.
#[derive(Clone, Debug, Default)]
pub struct NamedParams {
    params: BTreeMap<String, ParamTensor>,
    taken: BTreeSet<String>,
}

impl NamedParams {
    /// Reads every float parameter of `module`. Int and bool parameters (none in our models)
    /// are not collected.
    pub fn from_module<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut collector = Collector {
            path: Vec::new(),
            params: BTreeMap::new(),
        };
        module.visit(&mut collector);
        Self {
            params: collector.params,
            taken: BTreeSet::new(),
        }
    }

    /// Builds the store from explicit tensors (tests, or weights from elsewhere).
    pub fn from_tensors(params: impl IntoIterator<Item = (String, ParamTensor)>) -> Self {
        Self {
            params: params.into_iter().collect(),
            taken: BTreeSet::new(),
        }
    }

    /// Whether a parameter exists at `path` and has not been taken yet.
    pub fn contains(&self, path: &str) -> bool {
        self.params.contains_key(path)
    }

    /// Looks at a parameter without taking it.
    pub fn get(&self, path: &str) -> Result<&ParamTensor, OnnxError> {
        if self.taken.contains(path) {
            return Err(OnnxError::ParamTakenTwice(path.to_string()));
        }
        self.params
            .get(path)
            .ok_or_else(|| OnnxError::MissingParam(path.to_string()))
    }

    /// Takes a parameter out for writing into the graph; each can be taken once.
    pub fn take(&mut self, path: &str) -> Result<ParamTensor, OnnxError> {
        match self.params.remove(path) {
            Some(tensor) => {
                self.taken.insert(path.to_string());
                Ok(tensor)
            }
            None if self.taken.contains(path) => Err(OnnxError::ParamTakenTwice(path.to_string())),
            None => Err(OnnxError::MissingParam(path.to_string())),
        }
    }

    /// Paths of the parameters not taken yet, sorted.
    pub fn remaining(&self) -> Vec<String> {
        self.params.keys().cloned().collect()
    }

    /// Fails with the list of parameters the exporter never took.
    pub fn ensure_all_used(&self) -> Result<(), OnnxError> {
        if self.params.is_empty() {
            Ok(())
        } else {
            Err(OnnxError::UnusedParams(self.remaining()))
        }
    }

    /// Drops every parameter under `prefix` (e.g. a predictor that the export leaves out) so
    /// that [`Self::ensure_all_used`] does not count them. Returns how many were dropped.
    pub fn discard_prefix(&mut self, prefix: &str) -> usize {
        let dotted = format!("{prefix}.");
        let before = self.params.len();
        self.params
            .retain(|path, _| path != prefix && !path.starts_with(&dotted));
        before - self.params.len()
    }

    /// Number of parameters not taken yet.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether every parameter has been taken.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar values not taken yet (a parameter count for logs).
    pub fn num_values(&self) -> usize {
        self.params.values().map(|p| p.data.len()).sum()
    }
}

struct Collector {
    path: Vec<String>,
    params: BTreeMap<String, ParamTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let data: Vec<f32> = tensor.into_data().iter::<f32>().collect();
        self.params
            .insert(self.path.join("."), ParamTensor { shape, data });
    }
}
