"""Tiny models the tests build themselves (random weights, a WordPiece vocabulary written here): nothing is
downloaded. An embedding model in sentence-transformers' folder layout, with prompts when asked, and a
cross-encoder (BertForSequenceClassification, one label). Loads torch: slow tests only."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import GERMAN_NOTE, MERMAID_NOTE, NETWORK_NOTE, STORAGE_NOTE_CRLF

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# every word of the fixture vault and of the questions the tests ask, so few tokens are [UNK]
CORPUS = "\n".join([NETWORK_NOTE, STORAGE_NOTE_CRLF, MERMAID_NOTE, GERMAN_NOTE,
                    "query: passage: represent this sentence for searching relevant passages",
                    "how do i peer two virtual networks which storage keeps copies in a paired region "
                    "what does the archive tier need private endpoint dns zone subnets nsg rules"])


def write_vocab(folder: Path, text: str = CORPUS) -> Path:
    """vocab.txt: the special tokens, then each lower-cased word and punctuation mark of `text`."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm = BertNormalizer(lowercase=True).normalize_str(text)
    words = sorted({w for w, _ in BertPreTokenizer().pre_tokenize_str(norm)})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    return folder / "vocab.txt"


def _bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=48, max_position_embeddings=128, **extra)


def _tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = write_vocab(folder)
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True), len(vocab.read_text().split("\n")) - 1


def make_embedding_model(folder: Path, prompts: dict | None = None, seed: int = 0,
                         include_prompt: bool = True, default_prompt_name: str | None = None) -> Path:
    """A sentence-transformers model (BERT, mean pooling, normalized) in `folder`; `prompts` are saved in its
    config_sentence_transformers.json as sentence-transformers writes them."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    try:                                  # sentence-transformers >= 6
        from sentence_transformers.base.modules import Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Normalize, Pooling, Transformer

    torch.manual_seed(seed)
    raw = folder.parent / f".{folder.name}-transformer"
    tok, size = _tokenizer(raw)
    BertModel(_bert_config(size)).save_pretrained(raw)
    tok.save_pretrained(raw)
    modules = [Transformer(str(raw), max_seq_length=128), Pooling(32, "mean", include_prompt=include_prompt),
               Normalize()]
    SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name=default_prompt_name,
                        device="cpu").save(str(folder))
    return folder


def make_cross_encoder(folder: Path, seed: int = 0) -> Path:
    """A cross-encoder (one relevance logit per pair), saved with save_pretrained as hub cross-encoders are."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    tok, size = _tokenizer(folder)
    # a wide initialisation, so the random scores of different pairs differ clearly
    BertForSequenceClassification(_bert_config(size, num_labels=1, initializer_range=0.5)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def prompts_file(folder: Path) -> dict:
    return json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))


def set_prompts(folder: Path, prompts: dict) -> None:
    cfg = prompts_file(folder)
    cfg["prompts"] = prompts
    (folder / "config_sentence_transformers.json").write_text(json.dumps(cfg), encoding="utf-8")
