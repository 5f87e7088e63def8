//! ROC curve plots as the field draws them: background rejection 1/ε_B on a log scale versus
//! signal efficiency ε_S.
//!
//! Text is rendered with `ab_glyph` from a font compiled into the binary
//! ([`epaint_default_fonts::UBUNTU_LIGHT`]), so plotting works on machines without system
//! fonts or fontconfig (CI containers). Call [`ensure_font`] before drawing any other plot
//! with plotters (e.g. a loss curve); it registers the family `"sans-serif"`.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{MetricsError, RocCurve};

/// Size of the written PNG in pixels.
pub const ROC_PLOT_SIZE: (u32, u32) = (900, 650);

/// Registers the embedded font as plotters' `"sans-serif"` family (once per process).
pub fn ensure_font() -> Result<(), MetricsError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(MetricsError::Plot(
            "embedded font could not be loaded".into(),
        ))
    }
}

/// One labelled curve on a ROC plot.
#[derive(Clone, Copy, Debug)]
pub struct RocSeries<'a> {
    /// Legend text, e.g. the model name and its AUC.
    pub label: &'a str,
    /// The curve.
    pub curve: &'a RocCurve,
}

/// Writes a PNG with each curve as 1/ε_B (log scale) against ε_S, plus the line of a random
/// classifier (ε_B = ε_S) for reference. Points with ε_B = 0 (infinite rejection) cannot be
/// drawn on a log scale and are left out.
pub fn draw_roc_png(
    path: &Path,
    title: &str,
    series: &[RocSeries<'_>],
) -> Result<(), MetricsError> {
    ensure_font()?;
    let plot_err =
        |e: &dyn std::fmt::Display| MetricsError::Plot(format!("{}: {e}", path.display()));

    let points: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.curve
                .tpr
                .iter()
                .zip(&s.curve.fpr)
                .filter(|&(&tpr, &fpr)| tpr > 0.0 && fpr > 0.0)
                .map(|(&tpr, &fpr)| (tpr, 1.0 / fpr))
                .collect()
        })
        .collect();
    let max_rejection = points
        .iter()
        .flatten()
        .map(|&(_, r)| r)
        .fold(10.0f64, f64::max);
    let y_max = 10f64
        .powf(max_rejection.log10().ceil())
        .max(max_rejection * 1.5);

    let root = BitMapBackend::new(path, ROC_PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..1f64, (1f64..y_max).log_scale())
        .map_err(|e| plot_err(&e))?;
    chart
        .configure_mesh()
        .x_desc("Signal efficiency εS")
        .y_desc("Background rejection 1/εB")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| plot_err(&e))?;

    let random: Vec<(f64, f64)> = (1..=100)
        .map(|i| i as f64 / 100.0)
        .map(|x| (x, 1.0 / x))
        .collect();
    chart
        .draw_series(LineSeries::new(random, BLACK.mix(0.4).stroke_width(1)))
        .map_err(|e| plot_err(&e))?
        .label("random (εB = εS)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.mix(0.4)));
    for (i, (s, pts)) in series.iter().zip(points).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| plot_err(&e))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}
