//! The agreement check a semantic hit needs besides embedding similarity. Embeddings place a
//! question and its near-miss ("capital of France" / "capital of Germany", "open" / "close",
//! "miles to km" / "km to miles") as close as a paraphrase, so similarity alone serves wrong
//! answers at every threshold (measured by `cairn eval semantic-cache`). Two questions agree
//! when they ask with the same numbers and polarity, no direction flips, and every content word
//! of each is matched in the other: the same lemma, a word WordNet relates in a main sense
//! (delete/remove, differ/difference), or a category of a word the other names (tokyo/city).
//! The check is deliberately strict: a missed hit costs one model call, a false one a wrong
//! answer.

use super::lexicon::LEXICON;

/// Why two questions do not agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disagreement {
    /// They name different numbers (amounts, years, ordinals, Roman numerals).
    Numbers,
    /// One is negated and the other not.
    Negation,
    /// They use opposite directions (to/from, before/after, with/without).
    Opposite,
    /// The same words around a direction, or the same names, swapped ("miles to km" / "km to
    /// miles", "did Google buy YouTube" / "did YouTube buy Google").
    Swapped,
    /// A content word of one has no counterpart in the other.
    Unmatched(String),
    /// One asks for the most or least of something and the other does not ("largest" / "large").
    Degree,
    /// One has no content word at all ("what is it?"): nothing to compare, so never a hit.
    Vague,
    /// One has more than `MAX_CONTENT_WORDS` content words: not a question the check compares
    /// (its cost grows with the product of the two lengths).
    TooLong,
}

/// Most content words a question may have to be compared.
pub const MAX_CONTENT_WORDS: usize = 64;

/// Words that frame a question without choosing what it asks.
const FRAMING: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "for",
    "by",
    "to",
    "from",
    "into",
    "with",
    "about",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "doing",
    "done",
    "have",
    "has",
    "had",
    "having",
    "i",
    "me",
    "my",
    "mine",
    "we",
    "our",
    "us",
    "you",
    "your",
    "yours",
    "it",
    "its",
    "they",
    "them",
    "their",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "what",
    "which",
    "how",
    "and",
    "or",
    "but",
    "if",
    "so",
    "than",
    "then",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "please",
    "tell",
    "explain",
    "define",
    "describe",
    "know",
    "way",
    "ways",
    "step",
    "steps",
    "command",
    "method",
    "right",
    "correct",
    "proper",
    "go",
    "get",
    "want",
    "need",
    "let",
    "some",
    "any",
    "much",
    "many",
    "possible",
    "able",
    "use",
    "using",
    "mean",
    "means",
    "meaning",
    "some",
    "thing",
    "one",
    "exactly",
    "actually",
    "just",
    "really",
    "hi",
    "hello",
    "thanks",
    "between",
    "among",
    "within",
    "through",
    "across",
    "via",
    "per",
    "during",
    "onto",
    "upon",
    "all",
    "each",
    "every",
    "something",
    "anything",
    "number",
    "amount",
    "equal",
    "equals",
];

/// Superlatives that do not end in "-est".
const SUPERLATIVES: &[&str] = &["best", "worst", "most", "least"];

/// Words that negate.
const NEGATIONS: &[&str] = &["not", "no", "never", "without", "cannot", "nor", "neither", "none", "nothing"];

/// Auxiliaries whose `n't` form negates (apostrophe dropped: "dont", "isnt").
const AUXILIARIES: &[&str] = &[
    "do", "does", "did", "is", "are", "was", "were", "ca", "wo", "should", "could", "would", "have", "has", "had",
    "must",
];

/// Direction words that reverse a question when one stands for the other.
const OPPOSITES: &[(&str, &str)] = &[
    ("to", "from"),
    ("into", "out"),
    ("before", "after"),
    ("above", "below"),
    ("over", "under"),
    ("with", "without"),
    ("up", "down"),
    ("on", "off"),
    ("in", "out"),
    ("min", "max"),
    ("inside", "outside"),
    // Whose: "my name" / "your name".
    ("my", "your"),
    // May or must: "can I take" / "must I take".
    ("can", "must"),
    ("can", "should"),
    ("may", "must"),
    ("may", "should"),
    ("could", "must"),
    ("could", "should"),
    // How many: "are all birds" / "are some birds".
    ("all", "some"),
    ("all", "any"),
    ("every", "some"),
    ("every", "any"),
    // When: "who is the president" / "who was the president".
    ("is", "was"),
    ("are", "were"),
    ("do", "did"),
    ("does", "did"),
    ("did", "will"),
    ("was", "will"),
    ("were", "will"),
    ("minimum", "maximum"),
];

/// Words that set a direction: what comes before one and what after are not interchangeable
/// ("X to Y", "X than Y").
const ANCHORS: &[&str] = &["to", "into", "from", "than", "vs", "versus", "over"];

/// Question words that ask for something specific, and the nouns that ask the same.
const ASKING: &[(&str, &[&str])] = &[
    ("when", &["time", "year", "date", "day", "hour", "month"]),
    ("where", &["place", "location"]),
    ("why", &["reason", "cause"]),
    ("who", &["person", "whom", "whose"]),
];

const NUMBER_WORDS: &[&str] =
    &["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
const ORDINALS: &[&str] =
    &["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];
/// Roman numerals of two letters or more (a lone "i" or "v" is too often a word or a variable).
const ROMAN: &[(&str, u32)] = &[("ii", 2), ("iii", 3), ("iv", 4), ("vi", 6), ("vii", 7), ("viii", 8), ("ix", 9)];

/// One token of a question, as the check sees it.
#[derive(Clone, Debug)]
enum Token {
    Number(String),
    Framing(String),
    /// A content word: its lemmas (the word first).
    Content(Vec<String>),
}

/// A question broken down for the check.
#[derive(Debug)]
struct Question {
    tokens: Vec<Token>,
    numbers: Vec<String>,
    negated: bool,
    /// Where names (capitalised past the first word, acronyms) stand in `tokens`, in order.
    names: Vec<usize>,
    /// How many words ask for the most or least of something.
    superlatives: usize,
    words: Vec<String>,
}

/// Whether questions `a` and `b` ask the same thing, or the first reason they do not.
pub fn agree(a: &str, b: &str) -> Result<(), Disagreement> {
    let (qa, qb) = (Question::parse(a), Question::parse(b));
    let (ca, cb) = (qa.contents().len(), qb.contents().len());
    if ca == 0 || cb == 0 {
        return Err(Disagreement::Vague);
    }
    if ca > MAX_CONTENT_WORDS || cb > MAX_CONTENT_WORDS {
        return Err(Disagreement::TooLong);
    }
    if qa.numbers != qb.numbers {
        return Err(Disagreement::Numbers);
    }
    if qa.negated != qb.negated {
        return Err(Disagreement::Negation);
    }
    if qa.superlatives != qb.superlatives {
        return Err(Disagreement::Degree);
    }
    let has = |q: &Question, w: &str| q.words.iter().any(|x| x == w);
    for (x, y) in OPPOSITES {
        let one_way = has(&qa, x) && has(&qb, y) && !has(&qa, y) && !has(&qb, x);
        let other_way = has(&qa, y) && has(&qb, x) && !has(&qa, x) && !has(&qb, y);
        if one_way || other_way {
            return Err(Disagreement::Opposite);
        }
    }
    unmatched(&qa, &qb)?;
    unmatched(&qb, &qa)?;
    // Names in the other order: the subject and object trade places.
    let order = |q: &Question, name: &Token| q.names.iter().position(|&i| same(&q.tokens[i], name));
    for (k, &i) in qa.names.iter().enumerate() {
        for &j in &qa.names[k + 1..] {
            if let (Some(x), Some(y)) = (order(&qb, &qa.tokens[i]), order(&qb, &qa.tokens[j])) {
                if x > y {
                    return Err(Disagreement::Swapped);
                }
            }
        }
    }
    if roles_swapped(&qa, &qb) {
        return Err(Disagreement::Swapped);
    }
    for anchor in ANCHORS {
        if let (Some((a_before, a_after)), Some((b_before, b_after))) = (qa.around(anchor), qb.around(anchor)) {
            let moved = |from: &[&Token], to: &[&Token], stays: &[&Token]| {
                from.iter().any(|x| to.iter().any(|y| same(x, y)) && !stays.iter().any(|y| same(x, y)))
            };
            if moved(&a_before, &b_after, &b_before) || moved(&a_after, &b_before, &b_after) {
                return Err(Disagreement::Swapped);
            }
        }
    }
    Ok(())
}

/// Whether two words trade places around a verb that stays between them ("does the dog chase
/// the cat" / "does the cat chase the dog"): who does what to whom changed. Only a verb in the
/// middle counts: a noun phrase said backwards ("local git branch" / "branch in git locally")
/// keeps its meaning.
fn roles_swapped(qa: &Question, qb: &Question) -> bool {
    let (a, b) = (qa.contents(), qb.contents());
    // Where each word of `a` has its counterpart in `b`: the same word first (a related one
    // may be another word of the sentence: "dog" is also a verb meaning "chase").
    let at: Vec<Option<usize>> = a
        .iter()
        .map(|x| {
            let same_word = b.iter().position(|y| x.iter().any(|l| y.contains(l)));
            same_word.or_else(|| b.iter().position(|y| related(x, y)))
        })
        .collect();
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let (Some(pi), Some(pj)) = (at[i], at[j]) else { continue };
            let verb_between =
                |k: usize| at[k].is_some_and(|pk| pj < pk && pk < pi) && a[k].iter().any(|l| LEXICON.is_verb(l));
            if pj < pi && (i + 1..j).any(verb_between) {
                return true;
            }
        }
    }
    false
}

/// The first content word of `q` that `other` has no counterpart for.
fn unmatched(q: &Question, other: &Question) -> Result<(), Disagreement> {
    let theirs = other.contents();
    for lemmas in q.contents() {
        let matched = theirs.iter().any(|o| related(lemmas, o));
        // A word naming the kind of something the other names adds nothing ("which city").
        let category = theirs.iter().any(|o| lemmas.iter().any(|l| o.iter().any(|w| LEXICON.is_category(l, w))));
        if !matched && !category {
            return Err(Disagreement::Unmatched(lemmas[0].clone()));
        }
    }
    Ok(())
}

/// Whether two content words may stand for each other.
fn related(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| LEXICON.linked(x, y) || asks_same(x, y) || asks_same(y, x)))
}

/// Whether question word `x` asks for what noun `y` names ("when" / "year").
fn asks_same(x: &str, y: &str) -> bool {
    ASKING.iter().any(|(q, nouns)| *q == x && nouns.contains(&y))
}

fn same(a: &Token, b: &Token) -> bool {
    match (a, b) {
        (Token::Number(x), Token::Number(y)) => x == y,
        (Token::Content(x), Token::Content(y)) => related(x, y),
        _ => false,
    }
}

impl Question {
    fn parse(text: &str) -> Self {
        let mut q = Question {
            tokens: Vec::new(),
            numbers: Vec::new(),
            negated: false,
            names: Vec::new(),
            superlatives: 0,
            words: Vec::new(),
        };
        for raw in text.split(|c: char| c.is_whitespace() || "()[]{}\"?!:;/“”".contains(c)) {
            let raw = raw.trim_matches(|c: char| ".,'’-*_`".contains(c));
            if raw.is_empty() {
                continue;
            }
            // Acronyms and code-like names (HTTPS, node.js, c++) are matched exactly, never stemmed.
            let exact = raw.chars().filter(|c| c.is_alphabetic()).count() >= 2
                && raw.chars().all(|c| !c.is_lowercase())
                || raw.chars().any(|c| ".+#_".contains(c));
            let mut word = raw.to_lowercase().replace('’', "'");
            if let Some(stem) = word.strip_suffix("'s") {
                word = stem.to_owned();
            }
            let word = word.replace('\'', "");
            q.words.push(word.clone());
            if let Some(n) = number(&word) {
                q.numbers.push(n.clone());
                q.tokens.push(Token::Number(n));
            } else if NEGATIONS.contains(&word.as_str()) || negated_auxiliary(&word) {
                q.negated = !q.negated;
            } else if FRAMING.contains(&word.as_str()) {
                q.tokens.push(Token::Framing(word));
            } else if exact {
                q.names.push(q.tokens.len());
                q.tokens.push(Token::Content(vec![word]));
            } else {
                let lemmas = LEXICON.lemmas(&word);
                let superlative = SUPERLATIVES.contains(&word.as_str())
                    || word.ends_with("est") && lemmas.iter().any(|l| l.len() < word.len() - 1);
                q.superlatives += usize::from(superlative);
                if q.words.len() > 1 && raw.starts_with(char::is_uppercase) {
                    q.names.push(q.tokens.len());
                }
                q.tokens.push(Token::Content(lemmas));
            }
        }
        q.numbers.sort();
        q
    }

    /// The content words' lemmas.
    fn contents(&self) -> Vec<&Vec<String>> {
        self.tokens.iter().filter_map(|t| if let Token::Content(l) = t { Some(l) } else { None }).collect()
    }

    /// The telling tokens (not framing) before and after `anchor`, when it occurs once.
    fn around(&self, anchor: &str) -> Option<(Vec<&Token>, Vec<&Token>)> {
        let is_anchor = |t: &Token| matches!(t, Token::Framing(w) if w == anchor);
        let mut at = self.tokens.iter().enumerate().filter(|(_, t)| is_anchor(t)).map(|(i, _)| i);
        let (Some(i), None) = (at.next(), at.next()) else { return None };
        let telling = |t: &&Token| !matches!(t, Token::Framing(_));
        Some((self.tokens[..i].iter().filter(telling).collect(), self.tokens[i + 1..].iter().filter(telling).collect()))
    }
}

/// `n't` forms with the apostrophe dropped: "dont", "isnt", "cant".
fn negated_auxiliary(word: &str) -> bool {
    word.strip_suffix("nt").is_some_and(|aux| AUXILIARIES.contains(&aux)) || word == "cant" || word == "wont"
}

/// The value a number token stands for, written one way: "$1,000" and "1000" agree, as do
/// "second", "2nd" and "II".
fn number(word: &str) -> Option<String> {
    if let Some(i) = NUMBER_WORDS.iter().position(|w| *w == word) {
        return Some(i.to_string());
    }
    if let Some(i) = ORDINALS.iter().position(|w| *w == word) {
        return Some((i + 1).to_string());
    }
    if let Some((_, n)) = ROMAN.iter().find(|(w, _)| *w == word) {
        return Some(n.to_string());
    }
    let digits: String = word.chars().filter(|c| !"$€£%,".contains(*c)).collect();
    let digits = ["st", "nd", "rd", "th"].iter().find_map(|s| digits.strip_suffix(s)).unwrap_or(&digits);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<f64>().ok().map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewordings_agree() {
        for (a, b) in [
            ("How do I delete a local git branch?", "How can I remove a local branch in git?"),
            ("When did World War II end?", "In what year did the Second World War end?"),
            ("What's the difference between TCP and UDP?", "How do TCP and UDP differ?"),
            ("What is the population of Tokyo?", "What's the population of the city of Tokyo?"),
            ("Is it expensive?", "is it expensive"),
        ] {
            assert_eq!(agree(a, b), Ok(()), "{a} / {b}");
        }
    }

    #[test]
    fn near_misses_do_not() {
        let long = "word ".repeat(MAX_CONTENT_WORDS + 1);
        for (a, b, why) in [
            ("What is the capital of France?", "What is the capital of Germany?", "unmatched"),
            ("What does HTTP stand for?", "What does HTTPS stand for?", "unmatched"),
            ("Who won the 2018 World Cup?", "Who won the 2022 World Cup?", "numbers"),
            ("When did World War II end?", "When did World War I end?", "numbers"),
            ("Convert 10 miles to kilometres.", "Convert 10 kilometres to miles.", "swapped"),
            ("Is the store open on Sunday?", "Is the store not open on Sunday?", "negation"),
            ("Is the store open on Sunday?", "Isn't the store open on Sunday?", "negation"),
            ("How do I add a user to a group?", "How do I add a user from a group?", "opposite"),
            ("How do I make tea?", "How do I make green tea?", "unmatched"),
            ("What is the largest city in Australia?", "What is a large city in Australia?", "degree"),
            ("What is this?", "How is this?", "vague"),
            (long.as_str(), long.as_str(), "toolong"),
            ("Did Google acquire YouTube?", "Did YouTube acquire Google?", "swapped"),
            ("Does the dog chase the cat?", "Does the cat chase the dog?", "swapped"),
            ("Is Python faster than Java?", "Is Java faster than Python?", "swapped"),
            ("What is your name?", "What is my name?", "opposite"),
            ("Can I take ibuprofen with alcohol?", "Must I take ibuprofen with alcohol?", "opposite"),
            ("Who is the president of France?", "Who was the president of France?", "opposite"),
            ("Can all birds fly?", "Can some birds fly?", "opposite"),
            ("When does the bus come?", "When does the bus go?", "unmatched"),
            ("What time does the store open?", "What time does the store close?", "unmatched"),
        ] {
            let got = agree(a, b).expect_err(&format!("{a} / {b}"));
            assert!(format!("{got:?}").to_lowercase().starts_with(why), "{a} / {b}: {got:?}");
        }
    }

    #[test]
    fn numbers_read_one_way() {
        assert_eq!(number("$1,000"), number("1000"));
        assert_eq!(number("2nd"), number("second"));
        assert_eq!(number("ii"), Some("2".into()));
        assert_eq!(number("abc"), None);
        assert_eq!(number("15%"), Some("15".into()));
    }
}
