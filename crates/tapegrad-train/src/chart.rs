//! The training-curve chart of a [`History`], drawn with `plotters`: one panel per
//! recorded metric (training solid, validation dashed), as SVG or PNG.
//!
//! Text is set in DejaVu Sans (shipped in `assets/`, Bitstream Vera license), registered
//! with plotters' `ab_glyph` backend, so no system font library is needed.

use crate::history::History;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;
use tapegrad_core::{Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const PANEL: (u32, u32) = (460, 340);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and valid; a failure would only lose the text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Io(format!("drawing the history chart: {e}"))
}

impl History {
    /// The names drawn as panels: every recorded name without the `val_` prefix.
    fn panels(&self) -> Vec<String> {
        self.names().into_iter().filter(|n| !n.starts_with("val_")).collect()
    }

    /// The chart's size in pixels: panels three to a row.
    fn chart_size(&self) -> (u32, u32, usize, usize) {
        let n = self.panels().len().max(1);
        let cols = n.min(3);
        let rows = n.div_ceil(cols);
        (PANEL.0 * cols as u32, PANEL.1 * rows as u32, rows, cols)
    }

    /// An SVG chart of every recorded metric per epoch, one panel each, training solid and
    /// validation (`val_…`) dashed.
    ///
    /// ```
    /// use tapegrad_train::{EpochLog, History, Logs};
    /// let mut logs = Logs::default();
    /// logs.set("loss", 0.5);
    /// logs.set("val_loss", 0.6);
    /// let h = History { epochs: vec![EpochLog { epoch: 1, seconds: 1.0, logs }] };
    /// let svg = h.to_svg()?;
    /// assert!(svg.starts_with("<svg") && svg.contains("loss"));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn to_svg(&self) -> Result<String> {
        register_font();
        let (w, h, rows, cols) = self.chart_size();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            self.draw(&root, rows, cols)?;
            root.present().map_err(chart_error)?;
        }
        Ok(svg)
    }

    /// The same chart as [`History::to_svg`], as PNG bytes.
    ///
    /// ```
    /// use tapegrad_train::{EpochLog, History, Logs};
    /// let mut logs = Logs::default();
    /// logs.set("loss", 0.5);
    /// let h = History { epochs: vec![EpochLog { epoch: 1, seconds: 1.0, logs }] };
    /// assert!(h.to_png()?.starts_with(b"\x89PNG"));
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn to_png(&self) -> Result<Vec<u8>> {
        register_font();
        let (w, h, rows, cols) = self.chart_size();
        let mut rgb = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw(&root, rows, cols)?;
            root.present().map_err(chart_error)?;
        }
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(chart_error)?;
        writer.write_image_data(&rgb).map_err(chart_error)?;
        writer.finish().map_err(chart_error)?;
        Ok(out)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, rows: usize, cols: usize) -> Result<()> {
        root.fill(&WHITE).map_err(chart_error)?;
        let panels = self.panels();
        if panels.is_empty() {
            root.draw(&Text::new("no epochs recorded", (20, 20), (FAMILY, 16)))
                .map_err(chart_error)?;
            return Ok(());
        }
        let areas = root.split_evenly((rows, cols));
        for (area, name) in areas.iter().zip(&panels) {
            let train = finite(self.points(name));
            let val = finite(self.points(&format!("val_{name}")));
            let all = train.iter().chain(&val);
            let (mut lo, mut hi) = all.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(_, v)| {
                (a.min(v), b.max(v))
            });
            if !lo.is_finite() {
                (lo, hi) = (0.0, 1.0);
            }
            let pad = ((hi - lo) * 0.05).max(1e-9 * lo.abs().max(1.0));
            let (lo, hi) = (lo - pad, hi + pad);
            let last = all.map(|&(e, _)| e).fold(1.0, f64::max);
            let (x0, x1) = if last > 1.0 { (1.0, last) } else { (0.5, 1.5) };
            let mut chart = ChartBuilder::on(area)
                .caption(name, (FAMILY, 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, lo..hi)
                .map_err(chart_error)?;
            let ticks = (last as usize).clamp(1, 10);
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(ticks + 1)
                // Epochs are whole numbers: no label between them.
                .x_label_formatter(&|e| {
                    if (e - e.round()).abs() < 1e-9 {
                        format!("{e:.0}")
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|v| format!("{v:.4}"))
                .label_style((FAMILY, 12))
                .draw()
                .map_err(chart_error)?;
            for (series, color, label) in [(&train, TRAIN, "train"), (&val, VAL, "validation")] {
                if series.is_empty() {
                    continue;
                }
                let style = color.stroke_width(2);
                if label == "train" {
                    chart
                        .draw_series(LineSeries::new(series.iter().copied(), style))
                        .map_err(chart_error)?
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                } else {
                    chart
                        .draw_series(DashedLineSeries::new(series.iter().copied(), 6, 4, style))
                        .map_err(chart_error)?
                        .label(label)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
                // Markers, so a one-epoch run still shows its value.
                chart
                    .draw_series(series.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(chart_error)?;
            }
            chart
                .configure_series_labels()
                .label_font((FAMILY, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(chart_error)?;
        }
        Ok(())
    }
}

fn finite(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.into_iter().filter(|p| p.1.is_finite()).collect()
}
