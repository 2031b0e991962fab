"""The light path: `import azchat`, a cold `azchat ask` and a one-note rebuild import no torch."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, write

TORCH = {"torch", "sentence_transformers", "transformers", "gradio"}
HEAVY = TORCH | {"bm25s", "scipy"}        # a query reads BM25 arrays with numpy; only builds need bm25s

RUN_MAIN = """
import json, sys
from azchat.apps.cli import main
code = main(sys.argv[1:])
print("HEAVY=" + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & %r)), file=sys.stderr)
sys.exit(code)
""" % (HEAVY,)


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1")
    for name in ("AZCHAT_NOTES", "AZCHAT_INDEX", "AZCHAT_MODEL", "AZCHAT_ONNX", "AZCHAT_RERANKER"):
        env.pop(name, None)
    return env


def run_main(*argv) -> tuple[dict, list[str]]:
    proc = subprocess.run([sys.executable, "-c", RUN_MAIN, *argv], capture_output=True, text=True,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    heavy = json.loads(proc.stderr.rsplit("HEAVY=", 1)[1])
    return json.loads(proc.stdout), heavy


def test_import_azchat_is_cheap():
    code = ("import sys, azchat, azchat.apps.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'faiss', 'torch', 'sentence_transformers', 'gradio', 'onnxruntime', 'bm25s'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_numpy_bm25_reader_matches_bm25s(tmp_path):
    import bm25s

    from azchat.index.analysis import tokenize
    from azchat.index.lexical import LexicalIndex, _SavedBM25

    texts = ["Virtual networks peer over the backbone", "Storage accounts replicate data",
             "Private DNS zones resolve private endpoints", "Peering peering peering links", "Die DNS-Zone"]
    LexicalIndex.build(texts).save(tmp_path / "bm25")
    ours = LexicalIndex.load(tmp_path / "bm25", len(texts))
    assert isinstance(ours._bm25, _SavedBM25)
    ref = bm25s.BM25.load(str(tmp_path / "bm25"), allow_pickle=False, show_progress=False)
    for query in ["peering networks networks", "dns zone private", "storage", "nothing-here"]:
        known = [t for t in tokenize(query) if t in ref.vocab_dict]
        want = ref.get_scores(known) if known else np.zeros(len(texts))
        assert np.allclose(ours.scores(query), want, atol=1e-6), query


@pytest.mark.slow
def test_cold_ask_and_one_note_rebuild_without_torch(real_index, tmp_path):
    notes_src, index_src, export = real_index
    notes = tmp_path / "notes"
    shutil.copytree(notes_src, notes)
    index = tmp_path / "index"
    shutil.copytree(export, index / "models" / export.name)   # an index folder that already has the export

    stats, heavy = run_main("index", "--notes", str(notes), "--index", str(index), "--json")
    assert stats["added"] == 4 and stats["embedded"] == stats["chunks"] > 0
    assert not set(heavy) & TORCH

    answer, heavy = run_main("ask", "how do I peer two virtual networks", "--notes", str(notes),
                             "--index", str(index), "--json")
    assert heavy == []
    assert answer["found"] and answer["citations"][0]["path"] == "networking.md"

    path = notes / "dns.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n## Neu\n\nEin neuer Abschnitt über Resolver.\n",
                    encoding="utf-8")
    stats, heavy = run_main("index", "--notes", str(notes), "--index", str(index), "--json")
    assert not set(heavy) & TORCH
    assert (stats["updated"], stats["unchanged"]) == (1, 3)
    assert 1 <= stats["embedded"] <= 2          # only the changed section, not the whole vault

    # a stale index is refreshed by ask itself, still without torch
    write(notes, "new.md", "# Resolver\n\nA DNS private resolver forwards queries between networks.\n")
    answer, heavy = run_main("ask", "what forwards dns queries between networks", "--notes", str(notes),
                             "--index", str(index), "--json")
    assert not set(heavy) & TORCH
    assert any(c["path"] == "new.md" for c in answer["citations"])
