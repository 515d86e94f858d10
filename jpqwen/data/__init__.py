"""``make data``: Japanese Wikipedia -> filtered, deduplicated Qwen2.5 tokens in Megatron format.

Stages, in order (each module is one of them)::

    sources/download  where the jsonl(.gz) files come from (sample, LLM-jp v3 ja_wiki, a path/glob)
    reader            stream lines in chunks; malformed lines go to quarantine (file + line)
    normalize         Unicode NFC, control characters, whitespace
    filters           Swallow / Uzushio quality rules as NeMo Curator DocumentFilters
    dedup             exact (hash of normalized text) then near (MinHash + LSH, char n-grams)
    split             LLM-jp's validation file, else a deterministic hash split
    tokenizer         Qwen2.5 BPE (fastokens; tiktoken/hf options, all == HF ids) + <|endoftext|>
    writer            megatron-core IndexedDatasetBuilder parts, merged in input order
    report            data_card.{json,md,png}

``jpqwen.data.stage.run`` drives them; ``pipeline/data.py`` is the command line.
Nothing here has side effects at import.
"""
