//! A training history as CSV, JSON and a plotters chart (SVG, PNG), and saving by
//! extension.

use tapegrad_train::{EpochLog, History, Logs};

fn log(epoch: usize, loss: f64, acc: f64, val: bool) -> EpochLog {
    let mut logs = Logs::default();
    logs.set("loss", loss);
    logs.set("accuracy", acc);
    if val {
        logs.set("val_loss", loss * 2.0);
        logs.set("val_accuracy", acc / 2.0);
    }
    EpochLog {
        epoch,
        seconds: 0.5,
        logs,
    }
}

fn history(val: bool) -> History {
    History {
        epochs: vec![log(1, 0.3, 0.91, val), log(2, 0.15, 0.95, val), log(3, 0.1, 0.97, val)],
    }
}

#[test]
fn csv_and_json_hold_every_metric() {
    let h = history(true);
    let csv = h.to_csv();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("epoch,loss,accuracy,val_loss,val_accuracy,seconds"));
    assert_eq!(lines.next(), Some("1,0.3,0.91,0.6,0.455,0.5"));
    assert_eq!(csv.lines().count(), 4);
    let back: History = serde_json::from_str(&h.to_json()).unwrap();
    assert_eq!(back, h);
    // The JSON keeps the recording order of the names.
    let json = h.to_json();
    assert!(json.find("\"loss\"").unwrap() < json.find("\"val_accuracy\"").unwrap());
    assert_eq!(h.series("val_loss").len(), 3);
    assert_eq!(h.names(), ["loss", "accuracy", "val_loss", "val_accuracy"]);
    // An epoch without a name leaves its cell empty.
    let mut mixed = history(false);
    mixed.epochs[2].logs.set("learning_rate", 0.01);
    assert!(mixed.to_csv().lines().nth(1).unwrap().ends_with(",,0.5"));
}

#[test]
fn the_chart_has_a_panel_per_metric_with_both_curves() {
    let svg = history(true).to_svg().unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let has = |svg: &str, text: &str| svg.contains(&format!(">\n{text}\n</text>"));
    for text in ["loss", "accuracy", "train", "validation", "epoch"] {
        assert!(has(&svg, text), "missing {text}");
    }
    // Two panels side by side, each 460 wide.
    assert!(svg.contains("width=\"920\""), "{}", &svg[..200]);
    let no_val = history(false).to_svg().unwrap();
    assert!(has(&no_val, "train") && !has(&no_val, "validation"));
    let png = history(true).to_png().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // 920 × 340 in the IHDR chunk.
    assert_eq!(&png[16..24], &[0, 0, 3, 152, 0, 0, 1, 84]);
    // An empty history still draws.
    assert!(History::default().to_png().unwrap().len() > 100);
}

#[test]
fn save_picks_the_format_by_extension() {
    let dir = std::env::temp_dir().join(format!("tapegrad-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = history(true);
    for ext in ["csv", "json", "svg", "png"] {
        let p = dir.join(format!("h.{ext}"));
        History::check_save_path(&p).unwrap();
        h.save(&p).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 0);
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4, "no temporary file is left");
    let e = h.save(dir.join("h.txt")).unwrap_err().to_string();
    assert!(e.contains(".csv, .json, .svg or .png"), "{e}");
    let e = History::check_save_path(dir.join("missing/h.svg"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
