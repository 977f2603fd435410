//! BEIR-format datasets: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`,
//! `text`) and `qrels/test.tsv` (`query-id`, `corpus-id`, `score`, with a header line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::eval::Judgements;

/// Why a dataset could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BeirError {
    /// A file is missing or unreadable.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A line is not what the format says.
    #[error("{file}:{line}: {message}")]
    Format {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One corpus document.
#[derive(Clone, Debug, PartialEq)]
pub struct BeirDoc {
    /// Document id.
    pub id: String,
    /// Title (may be empty).
    pub title: String,
    /// Body.
    pub text: String,
}

/// A loaded dataset: corpus, the queries that have judgements, and the judgements.
#[derive(Clone, Debug)]
pub struct BeirDataset {
    /// The documents, in file order.
    pub corpus: Vec<BeirDoc>,
    /// (query id, text) of every judged query, in file order.
    pub queries: Vec<(String, String)>,
    /// Judgements by query id.
    pub qrels: HashMap<String, Judgements>,
}

impl BeirDataset {
    /// Reads the dataset in `dir` (test split).
    pub fn load(dir: &Path) -> Result<Self, BeirError> {
        let corpus = jsonl(&dir.join("corpus.jsonl"))?
            .into_iter()
            .map(|(v, _)| BeirDoc {
                id: id_of(&v),
                title: v["title"].as_str().unwrap_or_default().to_owned(),
                text: v["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let path = dir.join("qrels/test.tsv");
        let text = std::fs::read_to_string(&path).map_err(|e| BeirError::Io(path.clone(), e))?;
        let mut qrels: HashMap<String, Judgements> = HashMap::new();
        for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let grade = f.get(2).and_then(|g| g.trim().parse::<u32>().ok());
            let (Some(q), Some(d), Some(g)) = (f.first(), f.get(1), grade) else {
                return Err(BeirError::Format {
                    file: path,
                    line: n + 1,
                    message: "expected query-id, corpus-id, score".into(),
                });
            };
            qrels.entry((*q).to_owned()).or_default().insert((*d).to_owned(), g);
        }
        let queries = jsonl(&dir.join("queries.jsonl"))?
            .into_iter()
            .map(|(v, _)| (id_of(&v), v["text"].as_str().unwrap_or_default().to_owned()))
            .filter(|(id, _)| qrels.contains_key(id))
            .collect();
        Ok(Self { corpus, queries, qrels })
    }
}

/// Ids may be strings or numbers in the wild.
fn id_of(v: &serde_json::Value) -> String {
    match &v["_id"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn jsonl(path: &Path) -> Result<Vec<(serde_json::Value, usize)>, BeirError> {
    let text = std::fs::read_to_string(path).map_err(|e| BeirError::Io(path.to_owned(), e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map(|v| (v, n + 1)).map_err(|e| BeirError::Format {
                file: path.to_owned(),
                line: n + 1,
                message: e.to_string(),
            })
        })
        .collect()
}
