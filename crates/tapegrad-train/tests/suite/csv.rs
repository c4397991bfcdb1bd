//! Tabular datasets from CSV files: target columns by name or index, header optional,
//! errors naming the file, line and column.

use std::path::PathBuf;
use tapegrad_train::{Column, CsvOptions, Dataset, TargetKind};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn opts(targets: Vec<Column>, kind: TargetKind, has_header: bool) -> CsvOptions {
    CsvOptions {
        has_header,
        targets,
        kind,
        ..CsvOptions::default()
    }
}

#[test]
fn targets_by_name_or_index_and_features_in_file_order() {
    let path = write("named.csv", "a, y1 ,b,y2\n1,10,2,20\n3,30,4,40\n\n5,50,6,60\n");
    let d = Dataset::from_csv(&path, &opts(vec!["y2".into(), "y1".into()], TargetKind::Values, true)).unwrap();
    assert_eq!((d.len(), d.sample_dims()), (3, &[2][..]));
    let b = d.batch::<f64>(&[0, 2]).unwrap();
    assert_eq!(b.x.to_vec(), [1., 2., 5., 6.]);
    assert_eq!(b.y.values().unwrap().to_vec(), [20., 10., 60., 50.]);
    // The same columns by index.
    let by_index = Dataset::from_csv(&path, &opts(vec![3.into(), 1.into()], TargetKind::Values, true)).unwrap();
    assert_eq!(by_index, d);
    // Without a header row, the first line is data.
    let raw = write("raw.csv", "0.5,1,0\n1.5,2,1\n2.5,3,2\n");
    let d = Dataset::from_csv(
        &raw,
        &opts(vec![2.into()], TargetKind::Classes { classes: None }, false),
    )
    .unwrap();
    assert_eq!((d.len(), d.classes(), d.labels()), (3, Some(3), Some(&[0, 1, 2][..])));
    let d = Dataset::from_csv(
        &raw,
        &opts(vec![2.into()], TargetKind::Classes { classes: Some(5) }, false),
    )
    .unwrap();
    assert_eq!(d.classes(), Some(5));
}

#[test]
fn errors_name_the_file_line_and_column() {
    let bad = write("bad.csv", "x,y\n1,2\n3,abc\n");
    let e = Dataset::from_csv(&bad, &opts(vec!["y".into()], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.csv") && e.contains("line 3") && e.contains("column 2 (y)") && e.contains("'abc'"),
        "{e}"
    );

    let ragged = write("ragged.csv", "x,y\n1,2\n3,4,5\n");
    let e = Dataset::from_csv(&ragged, &opts(vec!["y".into()], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ragged.csv") && e.contains("line 3") && e.contains("3 fields"),
        "{e}"
    );

    let e = Dataset::from_csv(&bad, &opts(vec!["z".into()], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column named 'z'") && e.contains("columns: x, y"), "{e}");
    let e = Dataset::from_csv(&bad, &opts(vec![7.into()], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 7") && e.contains("2 columns"), "{e}");
    let e = Dataset::from_csv(&bad, &opts(vec!["y".into()], TargetKind::Values, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("without a header"), "{e}");
    let e = Dataset::from_csv(&bad, &opts(vec![], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no target column"), "{e}");
    let e = Dataset::from_csv(&bad, &opts(vec![0.into(), 1.into()], TargetKind::Values, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no feature column"), "{e}");

    let labels = write("labels.csv", "x,label\n1,0\n2,1.5\n");
    let classes = TargetKind::Classes { classes: None };
    let e = Dataset::from_csv(&labels, &opts(vec!["label".into()], classes, true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 3") && e.contains("column 2 (label)") && e.contains("1.5"),
        "{e}"
    );
    let labels = write("labels2.csv", "x,label\n1,0\n2,4\n");
    let two = TargetKind::Classes { classes: Some(2) };
    let e = Dataset::from_csv(&labels, &opts(vec!["label".into()], two, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("label 4 is not below 2"), "{e}");

    let e = Dataset::from_csv(
        bad.with_file_name("missing.csv"),
        &opts(vec![0.into()], TargetKind::Values, true),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing.csv"), "{e}");
}
