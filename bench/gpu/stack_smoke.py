"""Early check of the carried NeMo stack on the lent GPU, outside the project's stages.

HF (random Qwen2.5-0.5B shapes, fp32) -> ``llm.import_ckpt`` -> ``llm.export_ckpt``
(target hf) -> the exported model's logits against the source model's on the
same Japanese text. Tells, before the project's stages run there, whether the
round trip works on torch 2.11 without Transformer Engine, and how long it takes.

    python -m bench.gpu.stack_smoke --hf-dir DIR --work DIR --out smoke.json
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf-dir", type=Path, required=True, help="source HF checkpoint (fp32)")
    p.add_argument("--work", type=Path, required=True, help="scratch folder for the NeMo and exported checkpoints")
    p.add_argument("--out", type=Path, required=True, help="JSON result")
    args = p.parse_args()
    res: dict = {}

    def save():
        args.out.write_text(json.dumps(res, indent=1), encoding="utf-8")

    def timed(name, fn):
        t = time.time()
        try:
            value = fn()
            res[name] = {"ok": True, "seconds": round(time.time() - t, 1)}
            return value
        except Exception as exc:
            res[name] = {
                "ok": False,
                "seconds": round(time.time() - t, 1),
                "error": repr(exc)[:500],
                "traceback": traceback.format_exc()[-4000:],
            }
            raise
        finally:
            save()

    nemo_dir, export_dir = args.work / "nemo-import", args.work / "hf-export"
    try:
        llm = timed("import_nemo", lambda: __import__("nemo.collections.llm", fromlist=["llm"]))
        from jpqwen.nemo.environment import apply_runtime_patches

        res["runtime_patches"] = apply_runtime_patches()
        timed(
            "import_ckpt",
            lambda: llm.import_ckpt(
                model=llm.Qwen2Model(llm.Qwen25Config500M()),
                source=f"hf://{args.hf_dir}",
                output_path=str(nemo_dir),
                overwrite=True,
            ),
        )
        timed(
            "export_ckpt", lambda: llm.export_ckpt(path=nemo_dir, target="hf", output_path=export_dir, overwrite=True)
        )
        res["export_files"] = sorted(x.name for x in export_dir.iterdir())

        def parity():
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(args.hf_dir)
            ids = tok("日本の首都は東京です。富士山は日本一高い山です。", return_tensors="pt").input_ids.cuda()
            logits = {}
            for name, d in (("source", args.hf_dir), ("export", export_dir)):
                m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).cuda().eval()
                with torch.no_grad():
                    logits[name] = m(ids).logits.float()
                res[f"{name}_tied"] = bool(m.config.tie_word_embeddings)
                del m
            diff = (logits["source"] - logits["export"]).abs().max().item()
            rel = ((logits["source"] - logits["export"]).norm() / logits["source"].norm()).item()
            res["parity"] = {"max_abs_logit_diff": diff, "rel_l2": rel, "tokens": ids.shape[1]}

        timed("parity_fp32", parity)
    except Exception:
        pass
    save()
    failed = [k for k, v in res.items() if isinstance(v, dict) and v.get("ok") is False]
    print(
        json.dumps(
            {
                k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "traceback"})
                for k, v in res.items()
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
