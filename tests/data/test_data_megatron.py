"""What `make data` writes is what Megatron and NeMo read: real readers, real dataset builders."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.data.conftest import SAMPLE_DIR, read_jsonl

EOD = 151643


@pytest.fixture(scope="module")
def hf_tok(qwen_tokenizer_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(qwen_tokenizer_dir / "tokenizer.json"))
    tok.encode_special_tokens = True
    return tok


def _read(prefix: str):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(prefix)


def test_validation_tokens_equal_tokenizer_output_with_eod(sample_run, hf_tok):
    out = sample_run["outputs"]
    ds = _read(out["validation_prefix"])
    docs = read_jsonl(out["validation_jsonl"])
    assert len(ds) == len(docs) == sample_run["card"]["japanese"]["documents"]["validation"]
    for i, doc in enumerate(docs):
        want = hf_tok.encode(doc["text"], add_special_tokens=False).ids + [EOD]
        got = ds[i]
        assert got.dtype == np.int32
        assert got.tolist() == want


def test_train_documents_are_kept_inputs_in_input_order(sample_run, hf_tok):
    """Every train document decodes to a normalized input text, each once, in input order, ending in EOD."""
    from jpqwen.data.config import NormalizeConfig
    from jpqwen.data.normalize import normalize_text

    inputs = []
    for path in sorted((SAMPLE_DIR / "ja_wiki").glob("*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                import json

                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("text"), str):
                inputs.append(normalize_text(doc["text"], NormalizeConfig()))
    position = {}
    for i, text in enumerate(inputs):
        position.setdefault(text, i)
    ds = _read(sample_run["outputs"]["train_prefix"])
    assert len(ds) == sample_run["card"]["japanese"]["documents"]["train"]
    total = 0
    last = -1
    for i in range(len(ds)):
        ids = ds[i]
        assert ids[-1] == EOD and EOD not in ids[:-1].tolist()
        text = hf_tok.decode(ids[:-1].tolist(), skip_special_tokens=False)
        assert text in position, f"train doc {i} is not an input document"
        assert position[text] > last, "train documents are not in input order"
        last = position[text]
        total += ids.size
    assert total == sample_run["card"]["japanese"]["tokens"]["train"]
    # the English replay prefix is a Megatron dataset too
    en = _read(sample_run["outputs"]["en_replay_prefix"])
    assert len(en) == sample_run["card"]["english"]["documents"]["train"] and en[0][-1] == EOD


@pytest.fixture(scope="module")
def nemo_tokenizer(qwen_tokenizer_dir):
    from nemo.collections.common.tokenizers.huggingface.auto_tokenizer import AutoTokenizer

    tok = AutoTokenizer(str(qwen_tokenizer_dir))
    assert tok.eod == EOD
    return tok


def test_gpt_dataset_builds_seq_length_plus_one_samples(sample_run, nemo_tokenizer, tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    out = sample_run["outputs"]
    seq = 64
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=seq,
        blend_per_split=[([out["train_prefix"]], None), ([out["validation_prefix"]], None), None],
        tokenizer=nemo_tokenizer,
        path_to_cache=str(tmp_path / "index_cache"),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=True,
    )
    train, val, _ = BlendedMegatronDatasetBuilder(GPTDataset, [20, 5, None], lambda: True, config).build()
    assert len(train) >= 20 and len(val) >= 5
    # a GPTDataset sample is seq_length+1 tokens read from the .bin, shifted into tokens/labels
    raw = train._query_document_sample_shuffle_indices(0)[0]
    assert raw.shape == (seq + 1,)
    sample = train[0]
    assert sample["tokens"].shape == (seq,) and sample["labels"].shape == (seq,)
    assert np.array_equal(sample["tokens"][1:].numpy(), sample["labels"][:-1].numpy())
    assert int(sample["tokens"].max()) < 151936


def test_nemo_pretraining_data_module_builds_from_our_prefixes(sample_run, nemo_tokenizer, tmp_path):
    """NeMo 2's real PreTrainingDataModule takes the stamped prefixes and builds its datasets (CPU)."""
    from nemo.collections.llm.gpt.data.pre_training import PreTrainingDataModule

    out = sample_run["outputs"]
    dm = PreTrainingDataModule(
        paths={
            "train": [out["train_prefix"]],
            "validation": [out["validation_prefix"]],
            "test": [out["validation_prefix"]],
        },
        seq_length=64,
        tokenizer=nemo_tokenizer,
        micro_batch_size=1,
        global_batch_size=2,
        num_workers=0,
        index_mapping_dir=str(tmp_path / "idx"),
    )
    dm.build(
        trainer_max_steps=3, trainer_val_check_interval=2, trainer_limit_val_batches=1, trainer_limit_test_batches=1
    )
    assert len(dm._train_ds) >= 6 and len(dm._validation_ds) >= 2
    sample = dm._train_ds[0]
    assert sample["tokens"].shape == (64,)


def test_merge_names_a_part_shorter_than_its_index(tmp_path):
    """A part's .bin cut short (a disk that filled up under it): the in-kernel copy runs out of
    bytes and the merge fails naming that file, instead of writing a short dataset."""
    from jpqwen.data.writer import append_documents, indexed_dataset, merge_shards

    builder = indexed_dataset().IndexedDatasetBuilder(str(tmp_path / "part.bin"), dtype=np.int32)
    append_documents(builder, [np.arange(100, dtype=np.int32)], np.array([60, 40]))
    builder.finalize(str(tmp_path / "part.idx"))
    os.truncate(tmp_path / "part.bin", 300)
    with pytest.raises(OSError, match="part.bin ends before byte 400"):
        merge_shards([tmp_path / "part"], [np.array([True, True])], tmp_path / "merged")


@pytest.mark.parametrize("copy", ["in kernel", "read and write", "kernel refuses midway", "no copy_file_range"])
def test_bulk_append_and_merge_write_what_add_document_writes(tmp_path, monkeypatch, copy):
    """writer.append_documents (one write for many documents) and merge_shards (the kept documents
    of each part, by runs: copied in the kernel, read and written, in the kernel until the
    system refuses, then read and written, or read and written where os has no copy_file_range,
    as off Linux) give the same .bin/.idx bytes as megatron-core's own
    add_document, one document at a time, on the documents they select."""
    import errno
    import os

    from jpqwen.data.writer import append_documents, indexed_dataset, merge_shards

    calls = []
    if copy == "kernel refuses midway":  # the system's answer where it has no copy_file_range
        real = os.copy_file_range

        def refuse_after_two(*args):
            calls.append(args)
            if len(calls) > 2:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real(*args)

        monkeypatch.setattr(os, "copy_file_range", refuse_after_two)
    if copy == "no copy_file_range":  # (os has it on Linux only)
        monkeypatch.delattr(os, "copy_file_range")

    builder_cls = indexed_dataset().IndexedDatasetBuilder
    rng = np.random.default_rng(0)
    parts = [[rng.integers(0, 151_000, size=rng.integers(1, 50), dtype=np.int32) for _ in range(n)] for n in (7, 0, 12)]
    prefixes = []
    for k, docs in enumerate(parts):
        prefix = tmp_path / f"part{k}"
        ours, ref = builder_cls(f"{prefix}.bin", dtype=np.int32), builder_cls(f"{prefix}_ref.bin", dtype=np.int32)
        lengths = np.array([d.size for d in docs], dtype=np.int64)
        cut = [np.concatenate(docs)[:5], np.concatenate(docs)[5:]] if docs else []  # pieces cut mid-document
        append_documents(ours, cut, lengths)
        for d in docs:
            ref.add_document(d, [d.size])
        ours.finalize(f"{prefix}.idx")
        ref.finalize(f"{prefix}_ref.idx")
        for ext in ("bin", "idx"):
            assert (tmp_path / f"part{k}.{ext}").read_bytes() == (tmp_path / f"part{k}_ref.{ext}").read_bytes()
        prefixes.append(prefix)
    with pytest.raises(ValueError, match="tokens given"):
        append_documents(builder_cls(str(tmp_path / "bad.bin"), dtype=np.int32), [np.zeros(3, np.int32)], np.array([2]))

    selections = [np.array([1, 1, 0, 1, 0, 0, 1], dtype=bool), np.zeros(0, dtype=bool), rng.random(12) < 0.5]
    got = merge_shards(prefixes, selections, tmp_path / "merged", in_kernel=copy != "read and write")
    if copy == "kernel refuses midway":
        assert len(calls) == 3  # two runs of part 0 copied, then refused: that part and the rest read
    ref = builder_cls(str(tmp_path / "merged_ref.bin"), dtype=np.int32)
    picked = [d for docs, sel in zip(parts, selections, strict=True) for d, s in zip(docs, sel, strict=True) if s]
    for d in picked:
        ref.add_document(d, [d.size])
    ref.finalize(str(tmp_path / "merged_ref.idx"))
    for ext in ("bin", "idx"):
        assert (tmp_path / f"merged.{ext}").read_bytes() == (tmp_path / f"merged_ref.{ext}").read_bytes()
    assert got == {"documents": len(picked), "tokens": sum(d.size for d in picked)}
    back = indexed_dataset().IndexedDataset(str(tmp_path / "merged"))
    assert [back[i].tolist() for i in range(len(back))] == [d.tolist() for d in picked]
