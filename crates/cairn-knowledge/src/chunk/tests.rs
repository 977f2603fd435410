//! Chunk boundaries: sections, budgets, sentences, overlap, code fences and offsets.

use super::*;

fn opts(max: usize, overlap: usize) -> ChunkOptions {
    ChunkOptions { max_tokens: max, overlap_tokens: overlap }
}

fn chunks(text: &str, max: usize, overlap: usize) -> Vec<Chunk> {
    let out = chunk_text(text, opts(max, overlap), &WordCounter);
    for c in &out {
        assert_eq!(&text[c.start..c.end], c.text, "offsets point at the chunk's text");
    }
    out
}

#[test]
fn a_short_document_is_one_chunk() {
    let out = chunks("\n\n  Hello world. This is short.  \n", 50, 5);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "Hello world. This is short.");
    assert!(out[0].headings.is_empty());
    assert!(chunks("   \n\n ", 50, 5).is_empty());
}

#[test]
fn chunks_follow_sections_and_keep_the_heading_path() {
    let text = "Intro line.\n\n# Setup\n\nInstall it.\n\n## Linux\n\nUse apt.\n\n## macOS ##\n\nUse brew.\n\n# Usage\n\nRun it.\n";
    let out = chunks(text, 100, 0);
    let seen: Vec<(Vec<&str>, &str)> =
        out.iter().map(|c| (c.headings.iter().map(String::as_str).collect(), c.text.as_str())).collect();
    assert_eq!(
        seen,
        [
            (vec![], "Intro line."),
            (vec!["Setup"], "Install it."),
            (vec!["Setup", "Linux"], "Use apt."),
            (vec!["Setup", "macOS"], "Use brew."),
            (vec!["Usage"], "Run it."),
        ]
    );
}

#[test]
fn paragraphs_pack_up_to_the_budget_and_sentences_split_long_ones() {
    let para = |n: usize, w: &str| (0..n).map(|i| format!("{w}{i}")).collect::<Vec<_>>().join(" ") + ".";
    let text = format!("{}\n\n{}\n\n{} {} {}", para(4, "a"), para(4, "b"), para(6, "c"), para(6, "d"), para(6, "e"));
    let out = chunks(&text, 10, 0);
    // Two 4-word paragraphs fit together; the 18-word paragraph splits at sentences.
    assert_eq!(out[0].text, format!("{}\n\n{}", para(4, "a"), para(4, "b")));
    assert!(out.iter().all(|c| WordCounter.count(&c.text) <= 10));
    let words: Vec<&str> = out.iter().flat_map(|c| c.text.split_whitespace()).collect();
    assert_eq!(words, text.split_whitespace().collect::<Vec<_>>(), "every word, once, in order");
}

#[test]
fn consecutive_chunks_overlap_by_whole_sentences() {
    let text = "One two three. Four five six. Seven eight nine. Ten eleven twelve. Thirteen fourteen fifteen.";
    let out = chunks(text, 6, 3);
    assert!(out.len() >= 3);
    for pair in out.windows(2) {
        let last_sentence = pair[0].text.rsplit(". ").next().unwrap();
        assert!(pair[1].text.starts_with(last_sentence.trim_end_matches('.')), "{pair:?}");
        assert!(pair[1].start < pair[0].end, "overlap in the source too");
    }
    assert!(out.last().unwrap().text.ends_with("fifteen."));
}

#[test]
fn a_sentence_over_the_budget_is_cut_into_word_runs() {
    let text = (0..25).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let out = chunks(&text, 10, 0);
    assert_eq!(out.iter().map(|c| WordCounter.count(&c.text)).collect::<Vec<_>>(), [10, 10, 5]);
}

#[test]
fn code_fences_stay_whole_and_abbreviations_do_not_end_sentences() {
    let text =
        "Before.\n\n```\nfn main() {\n\n    println!(\"hi\");\n}\n```\n\nAfter, e.g. this. And Dr. Smith et al. agree.";
    let out = chunks(text, 100, 0);
    assert_eq!(out.len(), 1);
    let fence = sections(text)[0].1[1];
    assert!(text[fence.start..fence.end].contains("println") && text[fence.start..fence.end].ends_with("```\n"));
    let block = sections(text)[0].1[2];
    let s: Vec<&str> = sentences(text, block).iter().map(|s| text[s.start..s.end].trim()).collect();
    assert_eq!(s, ["After, e.g. this.", "And Dr. Smith et al. agree."]);
}

#[test]
fn chunks_are_indexed_with_their_heading_path() {
    let h = vec!["Manual".to_owned(), "Descaling".to_owned()];
    assert_eq!(index_text(&h, "Use vinegar."), "Manual / Descaling\n\nUse vinegar.");
    assert_eq!(index_text(&h, "## Descaling\n\nUse vinegar."), "## Descaling\n\nUse vinegar.", "says it already");
    assert_eq!(index_text(&[], "Plain."), "Plain.");
}
