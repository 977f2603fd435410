//! Word relations for the agreement check, read from `data/lexicon.txt` (built from WordNet 3.0
//! by `data/lexicon.py`, restricted to MiniLM's whole-word vocabulary). Parsed once, on first
//! use, into maps that borrow from the embedded text.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

static TEXT: &str = include_str!("../../../data/lexicon.txt");

/// The parsed table, shared by every check.
pub(super) static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| Lexicon::parse(TEXT));

/// Inflected forms, links between words that may stand for each other, and noun categories.
pub(super) struct Lexicon {
    forms: HashMap<&'static str, Vec<&'static str>>,
    /// Each link once, as (smaller, larger).
    links: HashSet<(&'static str, &'static str)>,
    categories: HashMap<&'static str, Vec<&'static str>>,
    verbs: HashSet<&'static str>,
}

impl Lexicon {
    fn parse(text: &'static str) -> Self {
        let mut lexicon =
            Lexicon { forms: HashMap::new(), links: HashSet::new(), categories: HashMap::new(), verbs: HashSet::new() };
        for line in text.lines() {
            let Some(kind) = line.chars().next() else { continue };
            let mut words = line[kind.len_utf8()..].split(' ');
            let Some(head) = words.next() else { continue };
            match kind {
                '=' => {
                    lexicon.forms.insert(head, words.collect());
                }
                '~' => lexicon.links.extend(words.map(|w| (head.min(w), head.max(w)))),
                '^' => {
                    lexicon.categories.insert(head, words.collect());
                }
                '*' => {
                    lexicon.verbs.insert(head);
                }
                _ => {}
            }
        }
        lexicon
    }

    /// The lemmas of `form` (a lowercase word), itself included.
    pub(super) fn lemmas(&self, form: &str) -> Vec<String> {
        let mut out = vec![form.to_owned()];
        if let Some(bases) = self.forms.get(form) {
            out.extend(bases.iter().filter(|b| **b != form).map(|b| (*b).to_owned()));
        }
        out
    }

    /// Whether one lemma may stand for the other in a question.
    pub(super) fn linked(&self, a: &str, b: &str) -> bool {
        a == b || self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Whether `lemma` is used at least as often as a verb as otherwise.
    pub(super) fn is_verb(&self, lemma: &str) -> bool {
        self.verbs.contains(lemma)
    }

    /// Whether `category` names a kind `word` is (tokyo: city).
    pub(super) fn is_category(&self, category: &str, word: &str) -> bool {
        self.categories.get(word).is_some_and(|c| c.contains(&category))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_relates_synonyms_and_forms_but_not_opposites_or_neighbours() {
        let l = &*LEXICON;
        assert!(l.lemmas("tallest").contains(&"tall".to_owned()));
        assert!(l.linked("delete", "remove"));
        assert!(l.linked("buy", "purchase"));
        assert!(!l.linked("open", "close"));
        assert!(!l.linked("france", "germany"));
        assert!(!l.linked("import", "export"));
        assert!(l.is_category("city", "tokyo"));
        assert!(!l.is_category("tea", "green"));
        assert!(l.is_verb("chase") && l.is_verb("delete") && !l.is_verb("branch"));
    }
}
