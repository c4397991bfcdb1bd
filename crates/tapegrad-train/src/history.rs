//! What `fit` returns: per-epoch metrics, writable as CSV or JSON and drawable as an SVG
//! chart of the training curves.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use tapegrad_core::{Error, Result};

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub loss: f64,
    /// Training accuracy over the epoch.
    pub accuracy: f64,
    /// Validation loss, when validation data was given.
    pub val_loss: Option<f64>,
    /// Validation accuracy, when validation data was given.
    pub val_accuracy: Option<f64>,
    /// Wall-clock seconds of the epoch's training steps (validation excluded).
    pub seconds: f64,
}

/// The per-epoch record of a training run, like Keras's `History`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per finished epoch.
    pub epochs: Vec<EpochLog>,
}

/// Points `(epoch, value)` of one curve.
type Series = Vec<(f64, f64)>;

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

impl History {
    /// CSV with a header `epoch,loss,accuracy,val_loss,val_accuracy,seconds` (empty cells
    /// where there was no validation).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,loss,accuracy,val_loss,val_accuracy,seconds\n");
        for e in &self.epochs {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{}",
                e.epoch,
                e.loss,
                e.accuracy,
                opt(e.val_loss),
                opt(e.val_accuracy),
                e.seconds
            );
        }
        s
    }

    /// Pretty-printed JSON of the whole history.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a history always serializes")
    }

    /// Writes CSV (`.csv`), JSON (`.json`) or the SVG chart (`.svg`), chosen by extension.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => self.to_csv(),
            Some("json") => self.to_json(),
            Some("svg") => self.to_svg(),
            _ => {
                return Err(Error::bad_value(
                    "History::save",
                    format!("{}: use a .csv, .json or .svg extension", path.display()),
                ))
            }
        };
        tapegrad_nn::checkpoint::write_atomic(path, text.as_bytes())
    }

    /// An SVG chart with two panels, loss and accuracy per epoch (training solid,
    /// validation dashed).
    pub fn to_svg(&self) -> String {
        let (w, h, pad) = (940.0, 380.0, 70.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let get = |f: fn(&EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                .collect()
        };
        let panels: [(&str, Series, Series); 2] = [
            ("loss", get(|e| Some(e.loss)), get(|e| e.val_loss)),
            ("accuracy", get(|e| Some(e.accuracy)), get(|e| e.val_accuracy)),
        ];
        let pw = (w - 3.0 * pad) / 2.0;
        for (i, (title, train, val)) in panels.iter().enumerate() {
            let x0 = pad + i as f64 * (pw + pad);
            panel(&mut svg, title, train, val, x0, pad, pw, h - 2.0 * pad);
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[allow(clippy::too_many_arguments)]
fn panel(svg: &mut String, title: &str, train: &[(f64, f64)], val: &[(f64, f64)], x0: f64, y0: f64, w: f64, h: f64) {
    let all = train.iter().chain(val);
    let (mut lo, mut hi) = all.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(_, v)| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    // 5% headroom so no curve runs along the frame.
    let margin = (hi - lo) * 0.05;
    let (lo, hi) = (lo - margin, hi + margin);
    let xmax = all.map(|&(e, _)| e).fold(1.0, f64::max);
    let sx = |e: f64| {
        x0 + if xmax > 1.0 {
            (e - 1.0) / (xmax - 1.0) * w
        } else {
            w / 2.0
        }
    };
    let sy = |v: f64| y0 + h - (v - lo) / (hi - lo) * h;
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"start\" font-size=\"14\">{title}</text>\n\
         <rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#444\"/>",
        x0,
        y0 - 6.0
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = sy(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.4}</text>",
            x0 + w,
            x0 - 4.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
        x0 + w / 2.0,
        y0 + h + 30.0
    );
    for (e, _) in train {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{e}</text>",
            sx(*e),
            y0 + h + 15.0
        );
    }
    for (series, color, dash, name) in [
        (train, "#1f77b4", "", "train"),
        (val, "#ff7f0e", " stroke-dasharray=\"6 4\"", "validation"),
    ] {
        if series.is_empty() {
            continue;
        }
        let pts: Vec<String> = series
            .iter()
            .map(|&(e, v)| format!("{:.1},{:.1}", sx(e), sy(v)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
            pts.join(" ")
        );
        // Above the frame, beside the title, so it never covers a curve.
        let ly = y0 - 10.0;
        let lx = x0 + w - if name == "train" { 190.0 } else { 110.0 };
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            lx,
            lx + 25.0,
            lx + 30.0,
            ly + 4.0
        );
    }
}
