//! Loss-curve PNG of a pre-training run. Top: the per-step loss (light) and its running mean
//! (dark) against the step on a log scale. Bottom: the target-embedding std (collapse watch:
//! a fall towards 0 means the targets became constant).
use std::path::Path;

use plotters::prelude::*;

use crate::error::TrainError;

/// Most steps in the running mean (fewer for short runs: a twentieth of the steps).
pub const SMOOTHING: usize = 50;

/// Tick labels with three significant digits and no float noise.
fn tick(v: &f64) -> String {
    if *v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{}", (v * 1e3).round() / 1e3)
    } else {
        format!("{v:.1e}")
    }
}

/// Writes `path` from `(step, loss, target_std)` points (non-finite or non-positive losses are
/// skipped).
pub fn draw_loss_png(path: &Path, title: &str, points: &[(usize, f64, f64)]) -> Result<(), TrainError> {
    let err = |e: &dyn std::fmt::Display| TrainError::Plot { path: path.to_path_buf(), reason: e.to_string() };
    crate::metrics::plot::ensure_font().map_err(|e| err(&e))?;
    let pts: Vec<(f64, f64)> =
        points.iter().filter(|(_, l, _)| l.is_finite() && *l > 0.0).map(|&(s, l, _)| (s as f64, l)).collect();
    if pts.is_empty() {
        return Err(err(&"no finite positive losses to draw"));
    }
    let stds: Vec<(f64, f64)> =
        points.iter().filter(|(_, _, s)| s.is_finite()).map(|&(step, _, s)| (step as f64, s)).collect();
    let window = (pts.len() / 20).clamp(1, SMOOTHING);
    let smooth: Vec<(f64, f64)> = pts
        .iter()
        .enumerate()
        .map(|(i, &(s, _))| {
            let from = i.saturating_sub(window - 1);
            let window = &pts[from..=i];
            (s, window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64)
        })
        .collect();
    let x_max = pts.last().map_or(1.0, |p| p.0).max(pts[0].0 + 1.0);
    let y_min = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) * 0.9;
    let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;

    let root = BitMapBackend::new(path, (900, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(520);
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(pts[0].0..x_max, (y_min..y_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("smooth L1 loss")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(pts.iter().copied(), RGBColor(160, 190, 230)))
        .map_err(|e| err(&e))?
        .label("per step")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(160, 190, 230)));
    chart
        .draw_series(LineSeries::new(smooth, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label(format!("mean of {window} steps"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let s_max = stds.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(pts[0].0..x_max, 0.0..s_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("target std")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .draw()
        .map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new(stds, RED.stroke_width(1))).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_and_rejects_empty_input() {
        let dir = std::env::temp_dir().join(format!("jettag-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loss.png");
        let points: Vec<(usize, f64, f64)> = (0..300).map(|s| (s, 1.0 / (1.0 + s as f64 / 30.0), 0.2)).collect();
        draw_loss_png(&path, "test", &points).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(draw_loss_png(&path, "test", &[(0, f64::NAN, 0.1)]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
