//! The per-layer local equivariance error as bars, one group per layer, one bar per
//! transformation (`equivar check --lie ... --plot STEM`).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use equivar::check::lie::LieReport;
use plotters::prelude::*;

use crate::plot::{Figure, draw_legend, write_figure};

struct LieFigure<'a>(&'a LieReport);

/// Writes `stem.png` and `stem.svg` and returns their paths. Errors if no transformation has
/// per-layer values (saturation alone).
pub fn lie_layers(report: &LieReport, stem: &Path) -> Result<[PathBuf; 2]> {
    if report.transforms.iter().all(|t| t.layers.is_empty()) {
        return Err(anyhow!(
            "no per-layer values to plot: saturation has none; add a geometric transformation \
             (e.g. --lie rotation,saturation)"
        ));
    }
    write_figure(&LieFigure(report), stem)
}

impl Figure for LieFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let report = self.0;
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
        let series: Vec<_> = report
            .transforms
            .iter()
            .filter(|t| !t.layers.is_empty())
            .collect();
        let names: Vec<String> = series[0].layers.iter().map(|l| l.name.clone()).collect();
        let top = series
            .iter()
            .flat_map(|t| t.layers.iter().map(|l| l.lee))
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "Local equivariance error per layer: {} at {}, {} images",
            report.model, report.input_size, report.images
        );
        let layers = names.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(90)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..layers as f64, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("mean |layer's Lie derivative through the rest|")
            .y_label_formatter(&|y| format!("{y:.1e}"))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        // Layer names under their bars, turned to fit (plotters' own labels skip some).
        for (i, name) in names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            let style = ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate90)
                .color(&BLACK);
            root.draw(&Text::new(name.clone(), (x - 6, y + 8), style))
                .map_err(err)?;
        }
        let width = 0.8 / series.len() as f64;
        for (s, t) in series.iter().enumerate() {
            let color = Palette99::pick(s).to_rgba();
            chart
                .draw_series(t.layers.iter().enumerate().map(|(i, l)| {
                    let x0 = i as f64 + 0.1 + s as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, l.lee)], color.filled())
                }))
                .map_err(err)?
                .label(format!("{} (end to end {:.2e})", t.transform.name(), t.lee))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}
