"""Reference side of `cairn-bench embed`: sentence-transformers on PyTorch (CPU), the same
~50-word SciFact sentences, the same thread count. Prints sentences/s at batch 1 and 32.

Usage: python st_embed.py MODEL_DIR CORPUS_JSONL THREADS SECONDS
"""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, corpus, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
torch.set_num_threads(threads)
texts = []
with open(corpus) as f:
    for line in f:
        words = json.loads(line)["text"].split()[:50]
        if len(words) == 50:
            texts.append(" ".join(words))
        if len(texts) == 2048:
            break
model = SentenceTransformer(model_dir, device="cpu")
print(f"| batch | sentences/s (PyTorch {torch.__version__}, sentence-transformers) |")
for batch in (1, 32):
    model.encode(texts[:batch], batch_size=batch, normalize_embeddings=True)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        i = done % (len(texts) - batch)
        model.encode(texts[i:i + batch], batch_size=batch, normalize_embeddings=True)
        done += batch
    print(f"| {batch} | {done / (time.perf_counter() - start):.1f} |")
