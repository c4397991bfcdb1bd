//! A training history as CSV, JSON and an SVG chart, and saving by extension.

use tapegrad_train::{EpochLog, History};

fn history() -> History {
    let log = |epoch: usize, loss: f64, acc: f64, val: bool| EpochLog {
        epoch,
        loss,
        accuracy: acc,
        val_loss: val.then_some(loss * 1.1),
        val_accuracy: val.then_some(acc - 0.01),
        seconds: 0.5,
    };
    History {
        epochs: vec![
            log(1, 0.3, 0.91, true),
            log(2, 0.15, 0.95, true),
            log(3, 0.1, 0.97, true),
        ],
    }
}

#[test]
fn csv_json_and_svg() {
    let h = history();
    let csv = h.to_csv();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("epoch,loss,accuracy,val_loss,val_accuracy,seconds"));
    assert_eq!(lines.next().unwrap().split(',').count(), 6);
    assert_eq!(csv.lines().count(), 4);
    let back: History = serde_json::from_str(&h.to_json()).unwrap();
    assert_eq!(back, h);
    let svg = h.to_svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        4,
        "train and validation, loss and accuracy"
    );
    let no_val = History {
        epochs: h
            .epochs
            .iter()
            .map(|e| EpochLog {
                val_loss: None,
                val_accuracy: None,
                ..e.clone()
            })
            .collect(),
    };
    assert!(no_val.to_csv().lines().nth(1).unwrap().contains(",,"));
    assert_eq!(no_val.to_svg().matches("<polyline").count(), 2);
}

#[test]
fn save_picks_the_format_by_extension() {
    let dir = std::env::temp_dir().join(format!("tapegrad-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = history();
    for ext in ["csv", "json", "svg"] {
        let p = dir.join(format!("h.{ext}"));
        h.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.is_empty());
        assert!(!dir.join(format!("h.{ext}.tmp")).exists());
    }
    let e = h.save(dir.join("h.png")).unwrap_err().to_string();
    assert!(e.contains(".csv, .json or .svg"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
