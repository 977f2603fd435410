//! Training and evaluating the injection classifier from a labelled set (JSON lines; see
//! `Example`). Training fits a logistic regression (full batch, Adam, L2, classes weighted to
//! balance) on windows: a direct example is one window; a document with an injection hidden
//! in it gives its injected passage as a positive and its other windows as negatives. The two
//! thresholds are chosen on out-of-fold scores (5 folds), so they are not tuned on examples
//! the model has seen: direct input at the highest detection with at most
//! `direct_fp` false positives, indirect at most `indirect_fp`.

use serde::{Deserialize, Serialize};

use crate::classifier::{features, windows, InjectionModel, Source, TextVectors};
use crate::injection::InjectionScreen;

/// One labelled text.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Example {
    /// The text: a user turn, or a whole document or tool result.
    pub text: String,
    /// Whether it holds an injection.
    pub label: bool,
    /// Direct input or indirect text.
    pub source: Source,
    /// `train` or `test`.
    pub split: String,
    /// For an indirect positive: the injected passage inside `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Examples sharing a group (the same carrier document) fall in the same fold, so the
    /// thresholds are chosen on documents unlike those the fold was fitted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u32>,
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Hash buckets.
    pub buckets: usize,
    /// Passes over the data.
    pub epochs: usize,
    /// L2 penalty.
    pub l2: f32,
    /// Most false positives allowed on direct negatives when choosing its threshold.
    pub direct_fp: f32,
    /// Most false positives allowed on indirect negatives when choosing its threshold.
    pub indirect_fp: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { buckets: 4096, epochs: 400, l2: 1e-4, direct_fp: 0.01, indirect_fp: 0.02 }
    }
}

/// The windows an example trains on, with their labels.
fn training_windows(e: &Example) -> Vec<(String, bool)> {
    match (e.source, e.label, &e.payload) {
        (Source::Indirect, true, Some(payload)) => {
            let mut out = vec![(payload.clone(), true)];
            out.extend(
                windows(&e.text)
                    .into_iter()
                    .filter(|w| !w.contains(payload.as_str()) && !payload.contains(*w))
                    .map(|w| (w.to_owned(), false)),
            );
            out
        }
        (Source::Indirect, false, _) => windows(&e.text).into_iter().map(|w| (w.to_owned(), false)).collect(),
        _ => vec![(e.text.clone(), e.label)],
    }
}

/// Fits a logistic regression to `(features, label)` rows of `width` features (full batch,
/// Adam, L2, classes weighted to balance); returns the weights and the bias.
pub fn fit(rows: &[(Vec<f32>, bool)], width: usize, o: &TrainOptions) -> (Vec<f32>, f32) {
    let pos = rows.iter().filter(|r| r.1).count().max(1) as f32;
    let neg = rows.iter().filter(|r| !r.1).count().max(1) as f32;
    let n = rows.len().max(1) as f32;
    let (wp, wn) = (n / (2.0 * pos), n / (2.0 * neg));
    let mut w = vec![0.0f32; width + 1];
    let (mut m, mut v) = (vec![0.0f32; width + 1], vec![0.0f32; width + 1]);
    let (lr, b1, b2, eps) = (0.05f32, 0.9f32, 0.999f32, 1e-8f32);
    for t in 1..=o.epochs {
        let mut g = vec![0.0f32; width + 1];
        for (x, y) in rows {
            let z: f32 = w[..width].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + w[width];
            let p = 1.0 / (1.0 + (-z).exp());
            let err = (p - if *y { 1.0 } else { 0.0 }) * if *y { wp } else { wn };
            for (gi, xi) in g[..width].iter_mut().zip(x) {
                *gi += err * xi;
            }
            g[width] += err;
        }
        for i in 0..=width {
            let reg = if i < width { o.l2 * w[i] } else { 0.0 };
            let gi = g[i] / n + reg;
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let mh = m[i] / (1.0 - b1.powi(t as i32));
            let vh = v[i] / (1.0 - b2.powi(t as i32));
            w[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    let bias = w.pop().unwrap_or_default();
    (w, bias)
}

/// The lowest threshold whose false-positive rate on `negatives` is at most `fp` (the score
/// just above the allowed number of negatives).
fn threshold(mut negatives: Vec<f32>, fp: f32) -> f32 {
    negatives.sort_by(|a, b| b.total_cmp(a));
    let allowed = (negatives.len() as f32 * fp).floor() as usize;
    negatives.get(allowed).map_or(0.5, |s| (s + 1e-4).min(0.999)).max(0.05)
}

/// Trains on the `train` split of `set`; `progress` hears about each stage.
pub fn train(
    set: &[Example],
    vectors: Option<&dyn TextVectors>,
    embedding_model: &str,
    o: &TrainOptions,
    progress: &mut dyn FnMut(&str),
) -> InjectionModel {
    let screen = InjectionScreen::new();
    let dims = vectors.map_or(0, |v| v.dimensions());
    let width = crate::injection::RULE_COUNT + o.buckets + dims;
    let train: Vec<&Example> = set.iter().filter(|e| e.split == "train").collect();
    progress(&format!("featurising {} examples", train.len()));
    // Each window once: a carrier document repeated with different insertions would
    // otherwise weigh its own words many times over.
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<Vec<(Vec<f32>, bool)>> = train
        .iter()
        .map(|e| {
            training_windows(e)
                .into_iter()
                .filter(|(w, y)| seen.insert((w.clone(), *y)))
                .map(|(w, y)| (features(&screen, vectors, o.buckets, dims, &w), y))
                .collect()
        })
        .collect();
    let fold_of = |i: usize, e: &Example| e.group.map_or(i, |g| g as usize) % 5;
    // Out-of-fold scores of whole examples, for the thresholds.
    let mut scored: Vec<(Source, bool, f32)> = Vec::new();
    for fold in 0..5 {
        progress(&format!("fold {} of 5", fold + 1));
        let m = fit_heads(&rows, &train, |i, e| fold_of(i, e) != fold, width, o, embedding_model, dims);
        for e in train.iter().enumerate().filter(|(i, e)| fold_of(*i, e) == fold).map(|(_, e)| e) {
            scored.push((e.source, e.label, m.score(&screen, vectors, &e.text, e.source).0));
        }
    }
    let negatives = |s: Source| scored.iter().filter(|r| r.0 == s && !r.1).map(|r| r.2).collect::<Vec<_>>();
    let direct = threshold(negatives(Source::Direct), o.direct_fp);
    let indirect = threshold(negatives(Source::Indirect), o.indirect_fp);
    progress("fitting the final model");
    let m = fit_heads(&rows, &train, |_, _| true, width, o, embedding_model, dims);
    InjectionModel { direct_threshold: direct, indirect_threshold: indirect, ..m }
}

/// Fits both heads on the examples `keep` selects: the direct head on direct examples, the
/// indirect head on indirect windows plus short direct examples (an attack typed into a chat
/// and one planted in a page share their wording).
fn fit_heads(
    rows: &[Vec<(Vec<f32>, bool)>],
    examples: &[&Example],
    keep: impl Fn(usize, &Example) -> bool,
    width: usize,
    o: &TrainOptions,
    name: &str,
    dims: usize,
) -> InjectionModel {
    let pick = |head: Source| -> Vec<(Vec<f32>, bool)> {
        rows.iter()
            .zip(examples)
            .enumerate()
            .filter(|(i, (_, e))| keep(*i, e))
            .filter(|(_, (_, e))| match head {
                Source::Direct => e.source == Source::Direct,
                Source::Indirect => e.source == Source::Indirect || e.text.len() <= SHORT_DIRECT,
            })
            .flat_map(|(_, (r, _))| r.iter().cloned())
            .collect()
    };
    let (weights, bias) = fit(&pick(Source::Direct), width, o);
    let (indirect_weights, indirect_bias) = fit(&pick(Source::Indirect), width, o);
    InjectionModel {
        embedding_model: name.to_owned(),
        buckets: o.buckets,
        dims,
        weights,
        bias,
        indirect_weights,
        indirect_bias,
        direct_threshold: 0.5,
        indirect_threshold: 0.5,
    }
}

/// Direct examples at most this long (bytes) also train the indirect head.
const SHORT_DIRECT: usize = 300;

/// Detection and false positives of one kind of source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rates {
    /// Injections in the set.
    pub positives: usize,
    /// Clean texts in the set.
    pub negatives: usize,
    /// Share of injections flagged.
    pub detection: f64,
    /// Share of clean texts flagged.
    pub false_positives: f64,
}

/// Rates of `model` on the `split` examples of `source`, at `threshold`.
pub fn evaluate(
    model: &InjectionModel,
    vectors: Option<&dyn TextVectors>,
    set: &[Example],
    split: &str,
    source: Source,
    threshold: f32,
) -> Rates {
    let screen = InjectionScreen::new();
    let mut r = Rates::default();
    let (mut hits, mut false_alarms) = (0usize, 0usize);
    for e in set.iter().filter(|e| e.split == split && e.source == source) {
        let flagged = model.score(&screen, vectors, &e.text, e.source).0 >= threshold;
        if e.label {
            r.positives += 1;
            hits += usize::from(flagged);
        } else {
            r.negatives += 1;
            false_alarms += usize::from(flagged);
        }
    }
    r.detection = hits as f64 / r.positives.max(1) as f64;
    r.false_positives = false_alarms as f64 / r.negatives.max(1) as f64;
    r
}
