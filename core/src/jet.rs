//! A jet as its constituents' four-momenta.

/// One jet: constituents as four-momenta in GeV (any order; preprocessing sorts by pT).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Jet {
    pub px: Vec<f32>,
    pub py: Vec<f32>,
    pub pz: Vec<f32>,
    pub energy: Vec<f32>,
    /// Class index into the reader's label list, if labels were read.
    pub label: Option<usize>,
}

impl Jet {
    pub fn n_constituents(&self) -> usize {
        self.px.len()
    }
}
