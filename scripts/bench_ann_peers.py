"""The peers of `cairn-bench ann`: FAISS's IndexHNSWFlat and hnswlib on the same vectors, same
M, ef_construction and ef_search, one thread each; prints them beside cairn-ann's figures (read
from cairn.json) with the QPS ratios. Usage: bench_ann_peers.py DIR M EF_CONSTRUCTION EF,EF,..."""
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
import faiss  # noqa: E402
import hnswlib  # noqa: E402

K = 10
# Each row is timed this many times and the fastest pass kept, here and in cairn-bench: one
# pass can be slowed by a neighbour on a shared host, the best is what the code can do.
PASSES = 3


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    out, m, efc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    efs = [int(e) for e in sys.argv[4].split(",")]
    queries = np.fromfile(os.path.join(out, "queries.f32"), dtype="<f4")
    truth = np.fromfile(os.path.join(out, "truth.u32"), dtype="<u4").reshape(-1, K)
    dim = queries.size // truth.shape[0]
    queries = queries.reshape(-1, dim)
    base = np.fromfile(os.path.join(out, "base.f32"), dtype="<f4").reshape(-1, dim)
    faiss.omp_set_num_threads(1)

    def timed(search):
        """The results of `search` and its best queries per second over `PASSES` passes."""
        best = 0.0
        for _ in range(PASSES):
            t = time.perf_counter()
            found = search()
            best = max(best, len(queries) / (time.perf_counter() - t))
        return found, best

    def recall(found):
        return float(np.mean([len(set(found[i]) & set(truth[i])) / K for i in range(len(truth))]))

    peers = {}
    before = rss_mb()
    t = time.perf_counter()
    f = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = efc
    f.add(base)
    build, mem = time.perf_counter() - t, rss_mb() - before
    rows = []
    for ef in efs:
        f.hnsw.efSearch = ef
        found, qps = timed(lambda: np.vstack([f.search(q[None, :], K)[1] for q in queries]))
        rows.append({"ef": ef, "recall": recall(found), "qps": qps})
    peers["FAISS IndexHNSWFlat"] = {"build_s": build, "memory_mb": mem, "rows": rows}
    del f

    before = rss_mb()
    t = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=dim)
    h.init_index(max_elements=len(base), ef_construction=efc, M=m)
    h.add_items(base, num_threads=1)
    build, mem = time.perf_counter() - t, rss_mb() - before
    rows = []
    for ef in efs:
        h.set_ef(ef)
        found, qps = timed(lambda: np.vstack([h.knn_query(q[None, :], k=K, num_threads=1)[0] for q in queries]))
        rows.append({"ef": ef, "recall": recall(found), "qps": qps})
    peers["hnswlib"] = {"build_s": build, "memory_mb": mem, "rows": rows}

    with open(os.path.join(out, "cairn.json")) as fh:
        cairn = json.load(fh)
    libraries = {"cairn-ann": cairn, **peers}
    print(f"\n## Embedded ANN: {len(base)} vectors, {dim} dimensions, M {m}, ef_construction {efc}, one thread\n")
    print("| library | build | memory | " + " | ".join(f"ef {ef}: recall@10 / QPS" for ef in efs) + " |")
    print("|---|---|---|" + "---|" * len(efs))
    for name, lib in libraries.items():
        cells = " | ".join(f"{r['recall']:.4f} / {r['qps']:.0f}" for r in lib["rows"])
        build = "kept" if lib["build_s"] is None else f"{lib['build_s']:.1f} s"
        memory = "kept" if lib["memory_mb"] is None else f"{lib['memory_mb']:.0f} MB"
        print(f"| {name} | {build} | {memory} | {cells} |")
    faiss_rows = peers["FAISS IndexHNSWFlat"]["rows"]
    ratios = " | ".join(f"{c['qps'] / p['qps']:.2f}x" for c, p in zip(cairn["rows"], faiss_rows))
    print(f"| cairn-ann QPS / FAISS QPS | | | {ratios} |")


if __name__ == "__main__":
    main()
