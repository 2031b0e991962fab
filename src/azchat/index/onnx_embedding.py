"""The light embedder: the model exported once to ONNX, run with onnxruntime + tokenizers (no torch).

The export is made at index time from the sentence-transformers reference and stored beside the index:

    index/models/<model>-<weights sha256[:16]>/
      model.onnx       the transformer (input_ids, attention_mask, token_type_ids -> last_hidden_state)
      tokenizer.json   the model's own tokenizer
      export.json      name, dim, max_seq_length, pooling, normalize, weights hash, source file stamp,
                       the query and passage prefixes (e5: "query: " / "passage: ")

Pooling (mean over the attention mask, or CLS) and L2 normalization happen in numpy, exactly as the
sentence-transformers Pooling + Normalize modules do. A prefix (e5's "query: ") is put before the text before
it is tokenized, as sentence-transformers' `prompt=` does; the export is checked against sentence-transformers'
own prompted encode() with each of the model's prefixes, so a model whose pooling treats the prefix otherwise
(include_prompt=False) is not exported. Export folders are written to a temporary name and renamed into place,
so a reader never sees half an export; generations are pruned, exports are not.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ModelError
from .models import ModelInfo
from .store import fsync_file

EXPORTS = "models"
EXPORT_VERSION = 1          # bump when the export format or procedure changes
OPSET = 17
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")   # pickle weights: see models.py
_VERIFY_TEXTS = [
    "How do I peer two virtual networks in Azure?",
    "Die Speicherkonten replizieren Daten in eine gekoppelte Region.",
    "x",
    "def f(x):\n    return x ** 2  # square " * 40,
]


def _weights_file(info: ModelInfo) -> Path | None:
    return next((info.path / n for n in _WEIGHT_FILES if (info.path / n).is_file()), None)


def _stamp(path: Path | None) -> list | None:
    if path is None:
        return None
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip().lower()).strip("._-")[:60] or "model"


def _read_meta(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != EXPORT_VERSION:
        return None
    if not (folder / "model.onnx").is_file() or not (folder / "tokenizer.json").is_file():
        return None
    return meta


_NO_PREFIXES = {"query": "", "passage": ""}


def find_export(index_dir: Path, info: ModelInfo) -> Path | None:
    """An export of exactly this model's files and prefixes under index_dir (stat only, no hashing), or None."""
    root = Path(index_dir) / EXPORTS
    if not root.is_dir():
        return None
    try:
        stamp = _stamp(_weights_file(info))
    except OSError:
        return None
    if stamp is None:
        return None
    for folder in sorted(root.glob(_slug(info.name) + "-*")):
        meta = _read_meta(folder)
        if meta and meta.get("name") == info.name and meta.get("source") == stamp \
                and meta.get("prefixes", _NO_PREFIXES) == info.prefixes:
            return folder
    return None


def _failure_file(index_dir: Path, info: ModelInfo) -> Path:
    return Path(index_dir) / EXPORTS / f".failed-{_slug(info.name)}.json"


def failed_before(index_dir: Path, info: ModelInfo) -> bool:
    """True when exporting these very model files failed before (so builds do not retry every time)."""
    try:
        data = json.loads(_failure_file(index_dir, info).read_text(encoding="utf-8"))
        return data.get("source") == _stamp(_weights_file(info)) and data.get("version") == EXPORT_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def mark_failed(index_dir: Path, info: ModelInfo, why: str) -> None:
    try:
        (Path(index_dir) / EXPORTS).mkdir(parents=True, exist_ok=True)
        _write_json_atomic(_failure_file(index_dir, info),
                           {"version": EXPORT_VERSION, "source": _stamp(_weights_file(info)), "error": why})
    except OSError:
        pass


def export_model(index_dir: Path, info: ModelInfo, st_model=None) -> Path:
    """Export the sentence-transformers model to ONNX under index_dir/models (imports torch).

    Checks the export against sentence-transformers on a few texts before publishing it; raises
    ModelError when the model cannot be exported faithfully (the caller then keeps the reference path).
    """
    import torch

    weights = _weights_file(info)
    if weights is None:
        raise ModelError(f"Model folder {info.path} has no weights file to export.")
    digest = hashlib.sha256()
    for part in (weights, info.path / "config.json", info.path / "tokenizer.json"):
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    if info.prefixes != _NO_PREFIXES:       # other prefixes: another export, checked with them
        digest.update(json.dumps(info.prefixes, sort_keys=True).encode())
    sha = digest.hexdigest()
    root = Path(index_dir) / EXPORTS
    final = root / f"{_slug(info.name)}-{sha[:16]}"
    meta = {
        "version": EXPORT_VERSION, "name": info.name, "dim": info.dim, "max_seq_length": info.max_seq_length,
        "pooling": info.pooling, "normalize": info.normalize, "sha256": sha, "source": _stamp(weights),
        "opset": OPSET, "prefixes": info.prefixes,
    }
    if final.is_dir() and _read_meta(final):
        # Same weights (e.g. the file was touched): refresh the stamp atomically.
        _write_json_atomic(final / "export.json", meta)
        return final
    if st_model is None:
        from sentence_transformers import SentenceTransformer

        st_model = SentenceTransformer(str(info.path), device="cpu", trust_remote_code=False,
                                       local_files_only=True)
    transformer = st_model[0].auto_model.eval()

    class _Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        ids = torch.ones((2, 16), dtype=torch.long)
        axes = {0: "batch", 1: "sequence"}
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Wrapped(transformer), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(tmp / "model.onnx"),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                              "last_hidden_state": axes},
                opset_version=OPSET, dynamo=False)
        shutil.copyfile(info.path / "tokenizer.json", tmp / "tokenizer.json")
        _write_json_atomic(tmp / "export.json", meta)
        light = OnnxEmbedder(tmp)
        # each prefix the index uses, applied by sentence-transformers' own prompt= on one side (its pooling
        # may leave the prefix out) and by the light embedder on the other
        for prompt in sorted({info.query_prefix, info.passage_prefix}):
            ref = st_model.encode(_VERIFY_TEXTS, prompt=prompt, normalize_embeddings=info.normalize,
                                  convert_to_numpy=True, show_progress_bar=False)
            got = light.embed(_VERIFY_TEXTS, prompt=prompt)
            cos = np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
            if float(cos.min()) < 0.9999:
                raise ModelError(f"The ONNX export of {info.name} differs from the model "
                                 f"(cosine {cos.min():.5f}{f' with the prefix {prompt!r}' if prompt else ''}).")
        del light
        for path in tmp.iterdir():
            fsync_file(path)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final.is_dir() and _read_meta(final)):   # another indexer won the race: fine
                raise
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"Could not export {info.name} to ONNX: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    fsync_file(tmp)
    os.replace(tmp, path)


class OnnxEmbedder:
    """Same vectors as the sentence-transformers model it was exported from; onnxruntime + tokenizers only."""

    light = True

    # Small batches pad least (texts are sorted by length, yet neighbours still differ): 400 vault chunks on
    # 2 cores took 7.0-7.5 s in batches of 16, 6.2 s of 8, 5.7-5.8 s of 4, 5.5-5.8 s of 1, and 6.3-6.5 s through
    # sentence-transformers (batches of 32) in the same run; earlier, 16 beat 32 and 64 (8.55 / 9.47 / 11.06 s)
    def __init__(self, folder: Path, batch_size: int = 4, threads: int | None = None):
        meta = _read_meta(Path(folder))
        if meta is None:
            raise ModelError(f"{folder} is not a complete azchat ONNX export.")
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.name = meta["name"]
        self.dim = int(meta["dim"])
        self.max_seq_length = int(meta["max_seq_length"])
        found = meta.get("prefixes") if isinstance(meta.get("prefixes"), dict) else _NO_PREFIXES
        self.query_prefix, self.passage_prefix = str(found.get("query", "")), str(found.get("passage", ""))
        self.pooling = meta["pooling"]
        self.normalize = bool(meta["normalize"])
        self.batch_size = batch_size
        self.threads = threads
        self._counter = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        from .embedding import prefix_tokens

        self.max_tokens = self.max_seq_length - 2 - prefix_tokens(self.count_tokens, self.passage_prefix)
        self._tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tok.enable_truncation(max_length=self.max_seq_length)
        self._tok.no_padding()
        self._session = None
        self._lock = threading.Lock()
        self._prefetch: threading.Thread | None = None

    def prefetch(self) -> "OnnxEmbedder":
        """Start loading the ONNX session in a background thread (onnxruntime releases the GIL while it
        builds the session), so a cold query overlaps it with reading the index. Not a daemon: a process that
        ends before the session is built waits the ~0.1 s for it, where a daemon thread killed inside
        onnxruntime aborts the process (`azchat ask ""` exited with SIGABRT, 134)."""
        if self._session is None and self._prefetch is None:
            self._prefetch = threading.Thread(target=self._quiet_load, name="azchat-onnx-load")
            self._prefetch.start()
        return self

    def _quiet_load(self) -> None:
        try:
            self._load()
        except Exception:   # embed() calls _load again and raises it in the caller's thread
            pass

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) - 2 for e in self._counter.encode_batch(list(texts))]

    def _load(self):
        with self._lock:
            return self._load_locked()

    def _load_locked(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = self.threads or max(1, min(os.cpu_count() or 1, 8))
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            # Threads sleep instead of spinning between ops: on a busy 2-core machine spinning threads
            # fight the process that owns the cores (measured: a single query 100 ms -> 47 ms under load).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                self._session = ort.InferenceSession(str(self.folder / "model.onnx"), sess_options=opts,
                                                     providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ModelError(f"Could not load the ONNX model in {self.folder}: {exc}") from exc
            self._inputs = {i.name for i in self._session.get_inputs()}
        return self._session

    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self._tok.encode_batch(texts)
        length = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), length), dtype=np.int64)
        mask = np.zeros((len(enc), length), dtype=np.int64)
        types = np.zeros((len(enc), length), dtype=np.int64)
        for row, e in enumerate(enc):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = 1
            types[row, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        if self.pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            m = mask[:, :, None].astype(hidden.dtype)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        pooled = pooled.astype(np.float32)
        if self.normalize:
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled

    def embed(self, texts: Sequence[str], progress=None, prompt: str = "") -> np.ndarray:
        texts = [prompt + t for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        if len(texts) == 1:
            return self._run(texts)
        # Sort by length so batches pad little; restore order afterwards.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._run([texts[i] for i in idx])
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out
