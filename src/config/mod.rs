//! Shared YAML configuration loading: every error names the file, line, column and field path.
//!
//! The daemons (PAC, PNS, dial client) describe their configuration as serde structs with
//! `#[serde(deny_unknown_fields)]` and load them with [`load_file`] or [`load_str`]. Two kinds of
//! errors come back as one [`ConfigError`], printed on one line as
//! `FILE:LINE:COLUMN: FIELD.PATH: message`:
//!
//! - *syntax and schema* errors from `yaml_serde` (bad YAML, wrong type, unknown field, missing
//!   field), which carry their own position and path;
//! - *semantic* errors found after parsing (duplicate ids, unknown references, ...), which the
//!   daemon reports through [`Source::error`] with a field path such as `lines[2].profile`;
//!   [`Source::locate`] finds that path in the text.
//!
//! `locate` understands block-style YAML (what configuration files use): it follows keys and
//! `- ` sequence items by indentation. Inside flow-style collections (`[a, b]`, `{k: v}`) it
//! stops at the deepest block-style node it can find, so the position is still near the error.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod policy;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One configuration error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or a label such as `<string>`).
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Field path, e.g. `lines[2].profile`; `.` for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.path,
            self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// A list of configuration errors (semantic validation reports all it finds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// The text of a configuration file, kept to place semantic errors.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name used in errors.
    pub file: PathBuf,
    /// The YAML text.
    pub text: String,
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (part.get(..i).unwrap_or(""), part.get(i..).unwrap_or("")),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped.get(..end).unwrap_or("").parse::<usize>() {
                steps.push(Step::Index(i));
            }
            rest = stripped.get(end + 1..).unwrap_or("");
        }
    }
    steps
}

/// A line of text with its indentation and content (comments and blank lines skipped).
struct TextLine<'a> {
    /// 1-based line number.
    number: usize,
    indent: usize,
    content: &'a str,
}

fn text_lines(text: &str) -> Vec<TextLine<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let content = l.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') || content == "---" {
                return None;
            }
            Some(TextLine {
                number: i + 1,
                indent: l.len() - content.len(),
                content,
            })
        })
        .collect()
}

/// Whether `content` starts with the mapping key `key` (`key:` then space or end).
fn is_key(content: &str, key: &str) -> bool {
    let c = content
        .strip_prefix('"')
        .and_then(|c| c.strip_prefix(key))
        .and_then(|c| c.strip_prefix('"'))
        .or_else(|| content.strip_prefix(key));
    c.and_then(|c| c.strip_prefix(':'))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

impl Source {
    /// Reads a file.
    pub fn read(path: &Path) -> Result<Source, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: ".".into(),
            message: format!("cannot read: {e}"),
        })?;
        Ok(Source {
            file: path.to_path_buf(),
            text,
        })
    }

    /// Wraps text under a label.
    pub fn from_text(label: impl Into<PathBuf>, text: impl Into<String>) -> Source {
        Source {
            file: label.into(),
            text: text.into(),
        }
    }

    /// Deserializes the text; schema errors carry the position and path yaml_serde reports.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        yaml_serde::from_str(&self.text).map_err(|e| self.yaml_error(&e))
    }

    fn yaml_error(&self, e: &yaml_serde::Error) -> ConfigError {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let mut msg = e.to_string();
        // yaml_serde appends " at line L column C"; the position is printed in front instead.
        let suffix = format!(" at line {line} column {column}");
        if msg.ends_with(&suffix) {
            msg.truncate(msg.len() - suffix.len());
        }
        // It prefixes the message with the field path when there is one ("lines[0].baud: ...").
        let (path, message) = match msg.split_once(": ") {
            Some((p, m))
                if !p.is_empty()
                    && p.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '?')
                    }) =>
            {
                (p.to_string(), m.to_string())
            }
            _ => (".".to_string(), msg.clone()),
        };
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            path,
            message,
        }
    }

    /// A semantic error at field `path` (e.g. `lines[2].profile`), placed with [`Source::locate`].
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.locate(path);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            path: if path.is_empty() {
                ".".into()
            } else {
                path.into()
            },
            message: message.into(),
        }
    }

    /// The 1-based (line, column) of the value at `path` in block-style YAML; the deepest
    /// ancestor found when the path leads into flow style; (1, 1) for the document.
    pub fn locate(&self, path: &str) -> (usize, usize) {
        let lines = text_lines(&self.text);
        let mut best = (1usize, 1usize);
        // The current node: lines [start, end) and the column its children (keys or "-" items)
        // sit at.
        let mut start = 0usize;
        let mut end = lines.len();
        let mut col = lines.first().map_or(0, |l| l.indent);
        for step in parse_path(path) {
            let window = lines.get(start..end).unwrap_or_default();
            let found = match step {
                Step::Key(key) => window.iter().enumerate().find_map(|(i, l)| {
                    // A key starts a line at the node's column, or follows the "- " of the
                    // sequence item that opens the node.
                    let dash = dash_prefix(l.content);
                    let content = l.content.get(dash..).unwrap_or("");
                    (l.indent + dash == col && is_key(content, key)).then_some((i, col))
                }),
                Step::Index(n) => window
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.indent == col && l.content.starts_with('-'))
                    .nth(n)
                    .map(|(i, l)| (i, l.indent)),
            };
            let Some((i, at)) = found else { break };
            let abs = start + i;
            let Some(line) = lines.get(abs) else { break };
            best = (line.number, at + 1);
            // The node ends before the next line at or left of its column; a block sequence
            // may sit at its key's column ("key:" then "- item" lines at the same indent).
            let mut j = abs + 1;
            while let Some(l) = lines.get(j) {
                let inside = l.indent > at
                    || (matches!(step, Step::Key(_))
                        && l.indent == at
                        && l.content.starts_with('-')
                        && !line.content.starts_with('-'));
                if j >= end || !inside {
                    break;
                }
                j += 1;
            }
            match step {
                Step::Key(_) => {
                    start = abs + 1;
                    end = j;
                    col = lines.get(start).map_or(0, |l| l.indent);
                }
                Step::Index(_) => {
                    start = abs;
                    end = j;
                    col = line.indent + dash_prefix(line.content);
                }
            }
            if start >= end {
                break;
            }
        }
        best
    }
}

/// Length of a leading "- " (or "-" at end of line) sequence-item marker, 0 if none.
fn dash_prefix(content: &str) -> usize {
    if content == "-" {
        return 1;
    }
    match content.strip_prefix("- ") {
        Some(rest) => content.len() - rest.trim_start_matches(' ').len(),
        None => 0,
    }
}

/// Reads and deserializes a YAML file.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<(T, Source), ConfigError> {
    let src = Source::read(path)?;
    let v = src.parse()?;
    Ok((v, src))
}

/// Deserializes YAML text under a file label.
pub fn load_str<T: DeserializeOwned>(label: &str, text: &str) -> Result<(T, Source), ConfigError> {
    let src = Source::from_text(label, text);
    let v = src.parse()?;
    Ok((v, src))
}
