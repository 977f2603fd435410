//! Structure-aware chunking. A document is cut into sections at its headings (Markdown `#`
//! lines), sections into blocks at blank lines (a fenced code block is one block), and blocks
//! are packed into chunks up to a token budget measured by the collection's own tokenizer. A
//! block over the budget is cut at sentence ends, a sentence over the budget into runs of
//! words. A chunk never spans two sections; consecutive chunks of a section overlap by a few
//! sentences. Each chunk keeps its byte range in the source (for citations and highlights)
//! and the heading path above it (context for embedding and display).

use cairn_core::knowledge::Collection;

/// Counts tokens the way the collection's embedding model does.
pub trait TokenCounter {
    /// Tokens in `text` (without the model's special tokens).
    fn count(&self, text: &str) -> usize;
}

/// Any `Fn(&str) -> usize` counts tokens, e.g. `|t| wordpiece.encode(t, usize::MAX).len() - 2`.
impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

/// Counts whitespace-separated words: for tests and for models without a tokenizer.
pub struct WordCounter;

impl TokenCounter for WordCounter {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// Budget and overlap, in tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Most tokens in one chunk.
    pub max_tokens: usize,
    /// Tokens of the previous chunk's end repeated at the start of the next (whole sentences).
    pub overlap_tokens: usize,
}

impl ChunkOptions {
    /// A collection's chunking settings.
    pub fn of(c: &Collection) -> ChunkOptions {
        ChunkOptions { max_tokens: c.chunk_max_tokens as usize, overlap_tokens: c.chunk_overlap_tokens as usize }
    }
}

impl Default for ChunkOptions {
    /// 200 tokens with 30 of overlap: inside MiniLM's 256-token window with room for the
    /// heading context.
    fn default() -> Self {
        Self { max_tokens: 200, overlap_tokens: 30 }
    }
}

/// One chunk of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's text (a slice of the source, whitespace-trimmed).
    pub text: String,
    /// Byte offset of its start in the source.
    pub start: usize,
    /// Byte offset just past its end in the source.
    pub end: usize,
    /// The headings above it, outermost first.
    pub headings: Vec<String>,
}

/// The text a chunk is indexed and embedded as: its heading path, then its text. A chunk deep
/// in a section otherwise loses what the section is about (a paper's title, a manual's
/// chapter), which both retrievers need. A chunk that opens with its own heading line already
/// says it, so it is indexed as is.
pub fn index_text(headings: &[String], text: &str) -> String {
    if headings.is_empty() || text.trim_start().starts_with('#') {
        return text.to_owned();
    }
    format!("{}\n\n{text}", headings.join(" / "))
}

/// A piece of the source that chunking treats as a unit: a byte range.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
}

/// Cuts `text` into chunks (see the module docs).
pub fn chunk_text(text: &str, options: ChunkOptions, counter: &dyn TokenCounter) -> Vec<Chunk> {
    let max = options.max_tokens.max(1);
    let mut out = Vec::new();
    for (headings, blocks) in sections(text) {
        // Units small enough to pack: whole blocks, else their sentences, else word runs.
        let mut units = Vec::new();
        for b in blocks {
            if counter.count(&text[b.start..b.end]) <= max {
                units.push(b);
                continue;
            }
            for s in sentences(text, b) {
                if counter.count(&text[s.start..s.end]) <= max {
                    units.push(s);
                } else {
                    units.extend(word_runs(text, s, max, counter));
                }
            }
        }
        pack(text, &units, &headings, options, counter, &mut out);
    }
    out
}

/// Greedily packs units into chunks of at most `max_tokens`, repeating trailing units of the
/// previous chunk (up to `overlap_tokens`) at the start of the next.
fn pack(
    text: &str,
    units: &[Span],
    headings: &[String],
    options: ChunkOptions,
    counter: &dyn TokenCounter,
    out: &mut Vec<Chunk>,
) {
    let cost: Vec<usize> = units.iter().map(|u| counter.count(&text[u.start..u.end])).collect();
    let mut i = 0;
    while i < units.len() {
        let (mut j, mut used) = (i, 0);
        while j < units.len() && (j == i || used + cost[j] <= options.max_tokens) {
            used += cost[j];
            j += 1;
        }
        let (start, end) = (units[i].start, units[j - 1].end);
        let piece = &text[start..end];
        let trimmed_start = start + (piece.len() - piece.trim_start().len());
        let trimmed_end = end - (piece.len() - piece.trim_end().len());
        if trimmed_end > trimmed_start {
            out.push(Chunk {
                text: text[trimmed_start..trimmed_end].to_owned(),
                start: trimmed_start,
                end: trimmed_end,
                headings: headings.to_vec(),
            });
        }
        if j == units.len() {
            break;
        }
        // Step back over trailing units that fit the overlap, but always move forward.
        let mut back = j;
        let mut overlap = 0;
        while back > i + 1 && overlap + cost[back - 1] <= options.overlap_tokens {
            overlap += cost[back - 1];
            back -= 1;
        }
        i = back;
    }
}

/// Splits `text` into (heading path, blocks) sections at Markdown headings; blank lines end
/// blocks, except inside fenced code.
fn sections(text: &str) -> Vec<(Vec<String>, Vec<Span>)> {
    let mut out: Vec<(Vec<String>, Vec<Span>)> = vec![(Vec::new(), Vec::new())];
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut block: Option<usize> = None;
    let mut fenced = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let (start, end) = (offset, offset + line.len());
        offset = end;
        let trimmed = line.trim();
        let close = |block: &mut Option<usize>, out: &mut Vec<(Vec<String>, Vec<Span>)>, at: usize| {
            if let Some(s) = block.take() {
                if let Some(last) = out.last_mut() {
                    last.1.push(Span { start: s, end: at });
                }
            }
        };
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            block.get_or_insert(start);
            if !fenced {
                close(&mut block, &mut out, end);
            }
            continue;
        }
        if fenced {
            continue;
        }
        let level = trimmed.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&level) && trimmed.as_bytes().get(level) == Some(&b' ') {
            close(&mut block, &mut out, start);
            path.retain(|(l, _)| *l < level);
            path.push((level, trimmed[level..].trim().trim_end_matches('#').trim().to_owned()));
            out.push((path.iter().map(|(_, h)| h.clone()).collect(), Vec::new()));
            continue;
        }
        if trimmed.is_empty() {
            close(&mut block, &mut out, start);
        } else {
            block.get_or_insert(start);
        }
    }
    if let Some(s) = block {
        if let Some(last) = out.last_mut() {
            last.1.push(Span { start: s, end: text.len() });
        }
    }
    out.retain(|(_, blocks)| !blocks.is_empty());
    out
}

/// Words after which a period does not end a sentence.
const ABBREVIATIONS: &[&str] =
    &["e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "fig", "al", "no", "approx"];

/// Cuts a block at sentence ends: `.`, `!` or `?` followed by whitespace, unless the word
/// before is a known abbreviation or a single letter (initials).
fn sentences(text: &str, block: Span) -> Vec<Span> {
    let s = &text[block.start..block.end];
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        if !matches!(c, '.' | '!' | '?') || !bytes.get(i + 1).is_some_and(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let word = s[start..i].rsplit(|ch: char| ch.is_whitespace()).next().unwrap_or_default();
        let lower = word.to_lowercase();
        if c == '.' && (ABBREVIATIONS.contains(&lower.as_str()) || word.chars().count() == 1) {
            continue;
        }
        out.push(Span { start: block.start + start, end: block.start + i + 1 });
        start = i + 1;
    }
    if s[start..].trim().is_empty() {
        if let Some(last) = out.last_mut() {
            last.end = block.end;
        }
    } else {
        out.push(Span { start: block.start + start, end: block.end });
    }
    out
}

/// Cuts an over-long sentence into runs of whole words of at most `max` tokens (a single word
/// over the budget stands alone).
fn word_runs(text: &str, span: Span, max: usize, counter: &dyn TokenCounter) -> Vec<Span> {
    let s = &text[span.start..span.end];
    let mut out = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for (off, word) in s.split_inclusive(char::is_whitespace).scan(0, |at, w| {
        let o = *at;
        *at += w.len();
        Some((o, w))
    }) {
        let (ws, we) = (span.start + off, span.start + off + word.len());
        run = match run {
            Some((rs, _)) if counter.count(&text[rs..we]) > max => {
                if let Some((a, b)) = run {
                    out.push(Span { start: a, end: b });
                }
                Some((ws, we))
            }
            Some((rs, _)) => Some((rs, we)),
            None => Some((ws, we)),
        };
    }
    if let Some((a, b)) = run {
        out.push(Span { start: a, end: b });
    }
    out
}

#[cfg(test)]
mod tests;
