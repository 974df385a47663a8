//! Plots (PNG and SVG, written atomically): accuracy against angle, one curve per model; the
//! per-layer bars of the Lie derivative are in [`crate::lie_plot`].

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::atomic;
use crate::eval::RotationCurve;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const SIZE: (u32, u32) = (900, 560);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded DejaVuSans.ttf is a valid font"));
    });
}

/// A chart that draws on any plotters backend (PNG and SVG).
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static;
}

struct AngleFigure<'a> {
    curves: &'a [RotationCurve],
    title: &'a str,
}

impl Figure for AngleFigure<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw(root, self.curves, self.title)
    }
}

/// Writes `stem.png` and `stem.svg` (atomically) and returns their paths.
pub fn accuracy_vs_angle(
    curves: &[RotationCurve],
    title: &str,
    stem: &Path,
) -> Result<[std::path::PathBuf; 2]> {
    write_figure(&AngleFigure { curves, title }, stem)
}

/// Writes `figure` as `stem.png` and `stem.svg` (atomically) and returns their paths.
pub(crate) fn write_figure(figure: &impl Figure, stem: &Path) -> Result<[std::path::PathBuf; 2]> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let dir = stem.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} for the plot", dir.display()))?;

    // Named like the atomic writes' (`.NAME.tmp-PID...`), so a killed run's leftover is
    // recognised.
    // plotters picks the format by the extension, so it stays last.
    let stem_name = stem
        .file_name()
        .map_or("plot".into(), |n| n.to_string_lossy());
    let tmp_png = dir.join(format!(".{stem_name}.tmp-{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp_png, SIZE).into_drawing_area();
        figure.draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("cannot draw {}: {e}", png.display()))?;
    }
    std::fs::rename(&tmp_png, &png).with_context(|| format!("cannot write {}", png.display()))?;

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        figure.draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("cannot draw {}: {e}", svg.display()))?;
    }
    atomic::write(&svg, text.as_bytes())?;
    Ok([png, svg])
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &[RotationCurve],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..360f64, 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("test rotation (degrees)")
        .y_desc("accuracy (%)")
        .x_labels(13)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(11)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = curve
            .angles
            .iter()
            .copied()
            .zip(curve.accuracy.iter().copied())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} (mean {:.1}%)", curve.label, curve.mean()))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// The legend box of every chart here, at `position`.
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("plot: {e:?}"))
}
