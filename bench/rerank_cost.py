"""CPU cost of the optional rerank stage (rerank.py) per question, without downloading a model.

    python bench/rerank_cost.py INDEX [--layers 6] [--questions 6] [--json OUT]

A cross-encoder of a real one's shape is built here with random weights: BERT, LAYERS x 384 wide, 12 heads,
1536 FFN (LAYERS=6 is cross-encoder/ms-marco-MiniLM-L6-v2's shape, 12 mmarco-mMiniLMv2-L12-H384's). It costs the
same forward passes as the real model; its scores mean nothing. Each question's 30 best fused passages of INDEX
(built beforehand with `azchat index`) are scored the way Retriever does it, in the searching thread (where
azchat has set OpenMP to one thread for FAISS). Prints the import, load and per-question times.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = ["how do I peer two vnets", "wie funktioniert die Namensauflösung für private Endpunkte",
             "what is the difference between LRS and GRS", "how do I create a storage account with the cli",
             "was ist eine Managed Identity", "how do I scale an AKS cluster", "what does a NSG rule priority do",
             "wie verschiebe ich eine VM in eine andere Region"]


def build_model(folder: Path, layers: int, words: list[str]) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=max(len(vocab), 30522), hidden_size=384, num_hidden_layers=layers,
                     num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from azchat.search.rerank import DEPTH, CrossEncoderReranker
    from azchat import Retriever

    r = Retriever(args.index, reranker="off")
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm = BertNormalizer(lowercase=True)
    words = [w for c in r.chunks[:3000] for w, _ in BertPreTokenizer().pre_tokenize_str(norm.normalize_str(c.embed_text))]
    t0 = time.perf_counter()
    import torch  # noqa: F401  (timed: the first question with a reranker pays it)
    import_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        rr = CrossEncoderReranker(str(build_model(Path(tmp) / "ce", args.layers, words)))
        t0 = time.perf_counter()
        model = rr._load()
        load_s = time.perf_counter() - t0
        times, tokens = [], []
        for q in QUESTIONS[:args.questions]:
            rows = [row for row, *_ in r._scored(q, DEPTH, None, None)]      # the searching thread, as in azchat
            texts = [r.chunks[row].embed_text for row in rows]
            enc = model.tokenizer([q] * len(texts), texts, truncation=True, max_length=512)["input_ids"]
            tokens.append(statistics.mean(len(e) for e in enc))
            t0 = time.perf_counter()
            rr.scores(q, texts)
            times.append(time.perf_counter() - t0)
    import torch

    out = {"layers": args.layers, "pairs": DEPTH, "questions": len(times), "torch_threads": torch.get_num_threads(),
           "import_torch_s": round(import_s, 2), "load_s": round(load_s, 2),
           "mean_pair_tokens": round(statistics.mean(tokens)), "per_question_s": [round(t, 3) for t in times],
           "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3)}
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
