//! Tabular datasets from CSV files: every column is a number; the target columns are
//! chosen by name or index and the remaining columns, in file order, are the features.

use super::features::Features;
use super::targets::TargetData;
use super::Dataset;
use std::path::Path;
use tapegrad_core::{Error, Result};

/// A CSV column, by header name or by 0-based index.
///
/// ```
/// use tapegrad_train::data::csv::Column;
/// assert_eq!(Column::from("price"), Column::Name("price".into()));
/// assert_eq!(Column::from(3), Column::Index(3));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// The column whose header cell is this name (needs a header row).
    Name(String),
    /// The 0-based column index.
    Index(usize),
}

impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Column::Name(name.to_string())
    }
}

impl From<usize> for Column {
    fn from(index: usize) -> Self {
        Column::Index(index)
    }
}

/// What the target columns hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// Numbers: the targets are float samples of shape `[k]` for `k` target columns.
    #[default]
    Values,
    /// One column of class indices `0, 1, 2, …` (written as integers); the class count is
    /// `classes`, or the largest label + 1 when `None`.
    Classes {
        /// Number of classes, when known.
        classes: Option<usize>,
    },
}

/// How [`Dataset::from_csv`] reads a file.
///
/// ```
/// use tapegrad_train::data::csv::{CsvOptions, TargetKind};
/// let opts = CsvOptions { targets: vec!["y".into()], ..CsvOptions::default() };
/// assert!(opts.has_header && opts.delimiter == b',' && opts.kind == TargetKind::Values);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first row holds column names (default `true`).
    pub has_header: bool,
    /// The field delimiter (default `b','`).
    pub delimiter: u8,
    /// The target columns; the others are the features.
    pub targets: Vec<Column>,
    /// Whether the targets are values or class indices.
    pub kind: TargetKind,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: true,
            delimiter: b',',
            targets: Vec::new(),
            kind: TargetKind::Values,
        }
    }
}

impl Dataset {
    /// Reads a CSV file of numbers into a dataset: features `[n_features]` (`f64`) per row,
    /// and targets per [`CsvOptions`]. Fields are trimmed; blank lines are skipped.
    ///
    /// Errors name the file, and the line and column of a bad field: an unparsable number,
    /// a row of the wrong length, an unknown target column, a class label that is not a
    /// non-negative integer or not below `classes`.
    ///
    /// ```
    /// use tapegrad_train::data::csv::CsvOptions;
    /// use tapegrad_train::Dataset;
    /// let path = std::env::temp_dir().join(format!("tapegrad-csv-doc-{}.csv", std::process::id()));
    /// std::fs::write(&path, "x1,y,x2\n1,10,2\n3,30,4\n")?;
    /// let opts = CsvOptions { targets: vec!["y".into()], ..CsvOptions::default() };
    /// let data = Dataset::from_csv(&path, &opts)?;
    /// let b = data.batch::<f64>(&[1])?;
    /// assert_eq!((b.x.to_vec(), b.y.values()?.to_vec()), (vec![3.0, 4.0], vec![30.0]));
    ///
    /// std::fs::write(&path, "x1,y,x2\n1,10,2\n3,oops,4\n")?;
    /// let e = Dataset::from_csv(&path, &opts).unwrap_err().to_string();
    /// assert!(e.contains("line 3") && e.contains("column 2 (y)") && e.contains("oops"), "{e}");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Dataset> {
        let path = path.as_ref();
        let at = |msg: String| Error::Format(format!("{}: {msg}", path.display()));
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(options.has_header)
            .delimiter(options.delimiter)
            .trim(::csv::Trim::All)
            .from_path(path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let header: Vec<String> = if options.has_header {
            let h = reader.headers().map_err(|e| at(csv_error(&e)))?;
            h.iter().map(str::to_string).collect()
        } else {
            Vec::new()
        };
        let mut rows: Vec<(u64, ::csv::StringRecord)> = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| at(csv_error(&e)))?;
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record));
        }
        let width = if options.has_header {
            header.len()
        } else {
            rows.first().map_or(0, |(_, r)| r.len())
        };
        let name = |c: usize| match header.get(c) {
            Some(h) => format!("column {} ({h})", c + 1),
            None => format!("column {}", c + 1),
        };
        let mut target_cols = Vec::with_capacity(options.targets.len());
        for t in &options.targets {
            let c = match t {
                Column::Index(i) if *i < width => *i,
                Column::Index(i) => {
                    return Err(at(format!(
                        "target column index {i} is out of range: rows have {width} columns"
                    )))
                }
                Column::Name(n) if !options.has_header => {
                    return Err(at(format!(
                        "target column '{n}' is named, but the file is read without a header row"
                    )))
                }
                Column::Name(n) => header
                    .iter()
                    .position(|h| h == n)
                    .ok_or_else(|| at(format!("no column named '{n}' (columns: {})", header.join(", "))))?,
            };
            if target_cols.contains(&c) {
                return Err(at(format!("{} is chosen as a target twice", name(c))));
            }
            target_cols.push(c);
        }
        if target_cols.is_empty() {
            return Err(at("no target column chosen (CsvOptions::targets is empty)".into()));
        }
        if target_cols.len() == width {
            return Err(at("every column is a target: no feature column is left".into()));
        }
        if matches!(options.kind, TargetKind::Classes { .. }) && target_cols.len() != 1 {
            return Err(at(format!(
                "class targets need exactly one column, {} were chosen",
                target_cols.len()
            )));
        }
        let feature_cols: Vec<usize> = (0..width).filter(|c| !target_cols.contains(c)).collect();
        let mut x = Vec::with_capacity(rows.len() * feature_cols.len());
        let mut y = Vec::with_capacity(rows.len() * target_cols.len());
        for (line, record) in &rows {
            let number = |c: usize| -> Result<f64> {
                let field = &record[c];
                field
                    .parse::<f64>()
                    .map_err(|_| at(format!("line {line}, {}: cannot read '{field}' as a number", name(c))))
            };
            for &c in &feature_cols {
                x.push(number(c)?);
            }
            for &c in &target_cols {
                y.push(number(c)?);
            }
        }
        let features = Features::from_f64(x, [feature_cols.len()]).map_err(|e| at(e.to_string()))?;
        let targets = match options.kind {
            TargetKind::Values => {
                TargetData::Values(Features::from_f64(y, [target_cols.len()]).map_err(|e| at(e.to_string()))?)
            }
            TargetKind::Classes { classes } => {
                let mut labels = Vec::with_capacity(y.len());
                for ((line, _), &v) in rows.iter().zip(&y) {
                    if !(v >= 0.0 && v.fract() == 0.0 && v < usize::MAX as f64) {
                        return Err(at(format!(
                            "line {line}, {}: class label {v} is not a non-negative integer",
                            name(target_cols[0])
                        )));
                    }
                    let l = v as usize;
                    if let Some(k) = classes.filter(|&k| l >= k) {
                        return Err(at(format!(
                            "line {line}, {}: class label {l} is not below {k} classes",
                            name(target_cols[0])
                        )));
                    }
                    labels.push(l);
                }
                let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(1, |m| m + 1));
                TargetData::Classes { labels, classes }
            }
        };
        Dataset::new(features, targets).map_err(|e| at(e.to_string()))
    }
}

/// A csv crate error with its line, in our words.
fn csv_error(e: &::csv::Error) -> String {
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths { pos, expected_len, len } => format!(
            "line {}: {len} fields, but the rows before have {expected_len}",
            pos.as_ref().map_or(0, |p| p.line())
        ),
        _ => match e.position() {
            Some(p) => format!("line {}: {e}", p.line()),
            None => e.to_string(),
        },
    }
}
