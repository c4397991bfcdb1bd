//! What `fit` returns: every recorded metric per epoch (training and `val_` prefixed),
//! writable as CSV or JSON and drawable as an SVG or PNG chart of the training curves.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::{self, Write as _};
use std::path::Path;
use tapegrad_core::{Error, Result};

/// Named values in the order they were recorded: the loss, the metrics, then the same
/// with `val_` before their names, and whatever callbacks add (e.g. `learning_rate`). Like
/// the `logs` dict of Keras's callbacks.
///
/// ```
/// use tapegrad_train::Logs;
/// let mut logs = Logs::default();
/// logs.set("loss", 0.5);
/// logs.set("accuracy", 0.9);
/// logs.set("loss", 0.4); // replaces, keeping the place
/// assert_eq!(logs.get("loss"), Some(0.4));
/// assert_eq!(logs.names().collect::<Vec<_>>(), ["loss", "accuracy"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logs(Vec<(String, f64)>);

impl Logs {
    /// The value of `name`, if recorded.
    ///
    /// ```
    /// assert_eq!(tapegrad_train::Logs::default().get("loss"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// Records `name = value`, replacing an earlier value of the same name in place.
    ///
    /// ```
    /// let mut logs = tapegrad_train::Logs::default();
    /// logs.set("mae", 1.5);
    /// assert_eq!(logs.get("mae"), Some(1.5));
    /// ```
    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The names, in recording order.
    ///
    /// ```
    /// let mut logs = tapegrad_train::Logs::default();
    /// logs.set("loss", 1.0);
    /// assert_eq!(logs.names().next(), Some("loss"));
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// `(name, value)` pairs, in recording order.
    ///
    /// ```
    /// let mut logs = tapegrad_train::Logs::default();
    /// logs.set("loss", 1.0);
    /// assert_eq!(logs.iter().collect::<Vec<_>>(), [("loss", 1.0)]);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(n, v)| (n.as_str(), *v))
    }
}

impl Serialize for Logs {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Logs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Logs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of metric names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<Logs, A::Error> {
                let mut logs = Logs::default();
                while let Some((k, v)) = m.next_entry::<String, f64>()? {
                    logs.set(k, v);
                }
                Ok(logs)
            }
        }
        d.deserialize_map(V)
    }
}

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Wall-clock seconds of the epoch's training steps (validation excluded).
    pub seconds: f64,
    /// The loss and metrics (weighted means over the epoch's samples), validation values
    /// under `val_` names, and anything callbacks recorded.
    pub logs: Logs,
}

/// The per-epoch record of a training run, like Keras's `History`.
///
/// ```
/// use tapegrad_train::{EpochLog, History, Logs};
/// let mut h = History::default();
/// for (epoch, loss) in [(1, 0.5), (2, 0.25)] {
///     let mut logs = Logs::default();
///     logs.set("loss", loss);
///     h.epochs.push(EpochLog { epoch, seconds: 1.0, logs });
/// }
/// assert_eq!(h.series("loss"), [0.5, 0.25]); // Keras: history.history["loss"]
/// assert!(h.to_csv().starts_with("epoch,loss,seconds\n1,0.5,1\n"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// One entry per finished epoch.
    pub epochs: Vec<EpochLog>,
}

/// The output formats of [`History::save`], by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
    Svg,
    Png,
}

fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(Error::bad_value(
            "History::save",
            format!("{}: use a .csv, .json, .svg or .png extension", path.display()),
        )),
    }
}

impl History {
    /// Every recorded name, in order of first appearance.
    ///
    /// ```
    /// assert!(tapegrad_train::History::default().names().is_empty());
    /// ```
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for n in self.epochs.iter().flat_map(|e| e.logs.names()) {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        names
    }

    /// The values of `name` over the epochs that recorded it (Keras's
    /// `history.history[name]`).
    ///
    /// ```
    /// assert!(tapegrad_train::History::default().series("loss").is_empty());
    /// ```
    pub fn series(&self, name: &str) -> Vec<f64> {
        self.epochs.iter().filter_map(|e| e.logs.get(name)).collect()
    }

    /// `(epoch, value)` points of `name`.
    pub(crate) fn points(&self, name: &str) -> Vec<(f64, f64)> {
        self.epochs
            .iter()
            .filter_map(|e| e.logs.get(name).map(|v| (e.epoch as f64, v)))
            .collect()
    }

    /// CSV with a header `epoch,<names…>,seconds` (empty cells where an epoch did not
    /// record a name).
    ///
    /// ```
    /// assert_eq!(tapegrad_train::History::default().to_csv(), "epoch,seconds\n");
    /// ```
    pub fn to_csv(&self) -> String {
        let names = self.names();
        let mut s = String::from("epoch");
        for n in &names {
            let _ = write!(s, ",{n}");
        }
        s.push_str(",seconds\n");
        for e in &self.epochs {
            let _ = write!(s, "{}", e.epoch);
            for n in &names {
                s.push(',');
                if let Some(v) = e.logs.get(n) {
                    let _ = write!(s, "{v}");
                }
            }
            let _ = writeln!(s, ",{}", e.seconds);
        }
        s
    }

    /// Pretty-printed JSON of the whole history.
    ///
    /// ```
    /// let h = tapegrad_train::History::default();
    /// assert_eq!(serde_json::from_str::<tapegrad_train::History>(&h.to_json()).unwrap(), h);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a history always serializes")
    }

    /// Checks, before a long run, that [`History::save`] can write `path`: a known
    /// extension and a directory that exists and accepts a new file (tried with a temporary
    /// file that is removed again).
    ///
    /// ```
    /// use tapegrad_train::History;
    /// assert!(History::check_save_path(std::env::temp_dir().join("h.png")).is_ok());
    /// assert!(History::check_save_path("h.txt").is_err());
    /// assert!(History::check_save_path("/no/such/dir/h.svg").is_err());
    /// ```
    pub fn check_save_path(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        format_of(path)?;
        check_writable(path)
    }

    /// Writes CSV (`.csv`), JSON (`.json`) or the chart (`.svg`, `.png`), chosen by
    /// extension, atomically (temporary file, fsync, rename).
    ///
    /// ```
    /// use tapegrad_train::History;
    /// let path = std::env::temp_dir().join(format!("tapegrad-h-doc-{}.csv", std::process::id()));
    /// History::default().save(&path)?;
    /// assert!(History::default().save("h.txt").unwrap_err().to_string().contains(".png"));
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = match format_of(path)? {
            Format::Csv => self.to_csv().into_bytes(),
            Format::Json => self.to_json().into_bytes(),
            Format::Svg => self.to_svg()?.into_bytes(),
            Format::Png => self.to_png()?,
        };
        tapegrad_nn::checkpoint::write_atomic(path, &bytes)
    }
}

/// Checks that a new file can be created beside `path` (in its directory), by creating
/// and removing a temporary one. Errors name the path and the reason.
///
/// ```
/// use tapegrad_train::check_writable;
/// assert!(check_writable(std::env::temp_dir().join("model.tgc")).is_ok());
/// assert!(check_writable("/no/such/dir/model.tgc").unwrap_err().to_string().contains("/no/such/dir"));
/// ```
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.file_name().is_none() || path.is_dir() {
        return Err(Error::Io(format!("{}: the path does not name a file", path.display())));
    }
    if !dir.is_dir() {
        return Err(Error::Io(format!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let probe = dir.join(format!(".tapegrad-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| Error::Io(format!("{}: cannot write in {}: {e}", path.display(), dir.display())))
}
