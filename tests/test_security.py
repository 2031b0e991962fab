"""Security rules checked on the source itself: no pickle, no remote code, no public share link, no shell."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from azchat import build_index
from azchat.index.embedding import HashEmbedder
from azchat.index.store import load_generation

from conftest import REPO, write

SOURCES = sorted((REPO / "src" / "azchat").rglob("*.py"))
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal",
                  "subprocess", "requests", "httpx", "urllib.request", "http.client", "ftplib", "telnetlib"}


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if isinstance(func, ast.Attribute):   # x.eval() on an expression is a method, not the builtin
                owner = func.value.id if isinstance(func.value, ast.Name) else "<expr>"
            else:
                owner = ""
            yield node, owner, name


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_sources_were_found():
    assert len(SOURCES) >= 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_pickle_remote_code_public_share_or_shell(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}" for a in node.names if a.name in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in BANNED_MODULES:
            problems.append(f"from {node.module} import")
    for call, owner, name in _calls(tree):
        where = f"line {call.lineno}"
        if name in ("eval", "exec", "system", "popen", "unsafe_load", "load_all") and owner in ("", "os", "yaml"):
            problems.append(f"{owner}.{name}() {where}")
        if owner == "torch" and name == "load":
            problems.append(f"torch.load (pickle) {where}")
        if owner in ("np", "numpy") and name in ("load", "save"):
            flag = _kw(call, "allow_pickle")
            if not (isinstance(flag, ast.Constant) and flag.value is False):
                problems.append(f"{owner}.{name} without allow_pickle=False {where}")
        for key in ("allow_pickle", "trust_remote_code", "share"):
            value = _kw(call, key)
            if value is not None and not (isinstance(value, ast.Constant) and value.value in (False, None)):
                if key == "allow_pickle" and owner in ("np", "numpy"):
                    continue   # reported above
                if key == "share" and ast.unparse(value) in ("share", "args.share"):
                    continue   # passed through from the explicit --share flag only
                problems.append(f"{key}={ast.unparse(value)} {where}")
        host = _kw(call, "server_name")
        if isinstance(host, ast.Constant) and host.value not in ("127.0.0.1", "localhost", None):
            problems.append(f"server_name={host.value!r} {where}")
    assert problems == [], f"{path.name}: {problems}"
    assert "trust_remote_code=True" not in path.read_text(encoding="utf-8").replace(" ", "")


def test_yaml_tags_in_frontmatter_never_run_code(tmp_path):
    notes = tmp_path / "notes"
    marker = tmp_path / "pwned"
    write(notes, "evil.md", f'---\ntitle: !!python/object/apply:os.system ["touch {marker}"]\n'
                            f'x: !!python/object/new:os.system ["touch {marker}"]\n---\n# Evil\n\nquuxevil\n')
    stats = build_index(notes, tmp_path / "index", embedder=HashEmbedder())
    assert not marker.exists()
    assert stats.notes == 1 and "frontmatter" in stats.warnings[0]["message"]
    assert "quuxevil" in load_generation(tmp_path / "index").chunks[0].text


def test_model_loading_is_offline_and_local():
    import os

    import azchat.index.models  # noqa: F401  (sets the offline switches on import)

    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    source = (REPO / "src" / "azchat" / "index" / "embedding.py").read_text()
    assert "trust_remote_code=False" in source and "local_files_only=True" in source
