import json

import pytest

from jpqwen.errors import JpqwenError
from jpqwen.stage import Stage, require_stage


def test_stage_is_up_to_date_only_with_same_fingerprint_and_outputs(work, tmp_path):
    out = tmp_path / "artifact.bin"
    out.write_bytes(b"x")
    s = Stage("data", work, config={"a": 1}, inputs={"files": ["f"]})
    assert not s.up_to_date()
    s.finish({"bin": str(out)}, {"docs": 3})
    rec = json.loads(s.stamp_path.read_text())
    assert rec["metrics"] == {"docs": 3} and rec["outputs"] == {"bin": str(out)}
    assert Stage("data", work, config={"a": 1}, inputs={"files": ["f"]}).up_to_date()
    assert not Stage("data", work, config={"a": 2}, inputs={"files": ["f"]}).up_to_date()
    assert not Stage("data", work, config={"a": 1}, inputs={"files": ["f"]}, force=True).up_to_date()
    out.unlink()
    assert not Stage("data", work, config={"a": 1}, inputs={"files": ["f"]}).up_to_date()


def test_missing_upstream_stage_says_what_to_run(work):
    with pytest.raises(JpqwenError, match="make pretrain"):
        require_stage(work, "pretrain")


def test_megatron_prefix_outputs_count_when_bin_and_idx_exist(work, tmp_path):
    prefix = tmp_path / "ja_train_text_document"
    for ext in (".bin", ".idx"):
        (tmp_path / (prefix.name + ext)).write_bytes(b"x")
    s = Stage("data", work, config={"a": 1})
    s.finish({"train_prefix": str(prefix)})
    import os

    os.utime(s.stamp_path, (1, 1))
    again = Stage("data", work, config={"a": 1})
    assert again.up_to_date()
    assert s.stamp_path.stat().st_mtime > 1  # refreshed, so Make sees the stage current
    (tmp_path / (prefix.name + ".idx")).unlink()
    assert not Stage("data", work, config={"a": 1}).up_to_date()
