"""Quality metrics on hand-made rankings, the eval CLI over a tiny vault (fake embedder), the BEIR loader."""
import json
import os
import math

import pytest

from azchat.apps import beir
from azchat.apps import evaluation as ev
from azchat.apps.cli import main

from conftest import write


def test_metrics_on_hand_made_rankings():
    ranked = ["a.md", "b.md", "c.md", "d.md"]
    assert ev.hit_at(ranked, {"c.md"}, 1) == 0.0
    assert ev.hit_at(ranked, {"c.md"}, 3) == 1.0
    assert ev.mrr_at(ranked, {"c.md", "d.md"}, 10) == pytest.approx(1 / 3)
    assert ev.mrr_at(ranked, {"x.md"}, 10) == 0.0
    assert ev.mrr_at(ranked, {"d.md"}, 3) == 0.0          # beyond the cut-off
    # two relevant, found at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ev.ndcg_at(ranked, {"b.md", "d.md"}, 10) == pytest.approx(expected)
    assert ev.ndcg_at(ranked, {"a.md"}, 10) == pytest.approx(1.0)
    # graded gains (BEIR qrels): the ideal order puts the grade-2 document first
    graded = ev.ndcg_at(["b", "a"], {"a": 2.0, "b": 1.0}, 10)
    assert graded == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ev.recall_at(ranked, {"a.md", "z.md"}, 100) == 0.5
    assert ev.dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
    assert ev.contains_term("Use  Terraform\nGraph to draw it", ["terraform graph"])
    assert not ev.contains_term("nothing here", ["terraform graph"])


def test_split_is_deterministic_by_line():
    qs = [ev.Question(f"q{i}", []) for i in range(1, 10)]
    assert [q.question for q in ev.split_questions(qs, "test")] == ["q3", "q6", "q9"]
    assert len(ev.split_questions(qs, "dev")) == 6
    assert len(ev.split_questions(qs, "all")) == 9


def test_question_file_errors_are_clear(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "x", "gold_files": []}\nnot json\n', encoding="utf-8")
    with pytest.raises(ev.EvalInputError, match="Line 2"):
        ev.load_questions(bad)
    with pytest.raises(ev.EvalInputError, match="does not exist"):
        ev.load_questions(tmp_path / "missing.jsonl")


@pytest.fixture
def fake_model(monkeypatch, fake):
    import azchat.index.embedding

    monkeypatch.setattr(azchat.index.embedding, "load_embedder", lambda model=None, index_dir=None: fake)
    return fake


def test_eval_cli_over_a_tiny_vault(vault, tmp_path, fake_model, capsys):
    qfile = tmp_path / "questions.jsonl"
    rows = [
        {"question": "archive tier rehydration", "gold_files": ["storage/storage.md"],
         "answer_terms": ["rehydration"]},
        {"question": "peering link in each direction", "gold_files": ["networking.md"],
         "answer_terms": ["each direction"]},
        {"question": "sourdough bread starter feeding", "gold_files": []},
    ]
    qfile.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = [str(qfile), "--notes", str(vault), "--index", str(tmp_path / "index")]
    assert main(["eval", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    s = out["summary"]
    assert (s["questions"], s["answerable"], s["unanswerable"]) == (3, 2, 1)
    assert s["hit@1"] == 1.0 and s["mrr@10"] == 1.0 and s["hit@5"] == 1.0
    assert s["answer_term_rate"] == 1.0 and s["answerable_refused"] == 0.0
    assert s["unanswerable_refused"] == 1
    assert out["rows"][0]["ranked"][0] == "storage/storage.md"

    # a folder filter is applied inside retrieval: the networking note cannot be found under storage/
    assert main(["eval", *args, "--json", "--folder", "storage"]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["hit@1"] == 0.5

    assert main(["eval", *args]) == 0
    text = capsys.readouterr().out
    assert "3 questions" in text and "hit@5 1.000" in text and "unanswerable refused 1/1" in text


def test_eval_cli_needs_exactly_one_input(capsys):
    assert main(["eval"]) == 2
    assert "questions file or --beir" in capsys.readouterr().err


def _beir(folder):
    corpus = [
        {"_id": "d1", "title": "Peering", "text": "Virtual network peering connects two networks.", "metadata": {}},
        {"_id": "d2", "title": "Archive", "text": "The archive tier needs rehydration first.", "metadata": {}},
        {"_id": "d/3", "title": "", "text": "Sourdough starter needs flour and water.", "metadata": {"x": 1}},
    ]
    queries = [
        {"_id": "q1", "text": "how do I connect two virtual networks", "metadata": {"evidence": "d1"}},
        {"_id": "q2", "text": "archive rehydration", "metadata": {}},
        {"_id": "q3", "text": "not judged", "metadata": {}},
    ]
    write(folder, "corpus.jsonl", "\n".join(json.dumps(c) for c in corpus) + "\n")
    write(folder, "queries.jsonl", "\n".join(json.dumps(q) for q in queries) + "\n")
    write(folder, "qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td/3\t0\n")


def test_beir_loader_and_notes(tmp_path):
    _beir(tmp_path / "beir")
    b = beir.load_beir(tmp_path / "beir")
    assert set(b.corpus) == {"d1", "d2", "d/3"}
    assert set(b.queries) == {"q1", "q2"}                     # only judged queries
    assert b.qrels == {"q1": {"d1": 1.0}, "q2": {"d2": 1.0, "d/3": 0.0}}
    mapping = beir.write_beir_notes(b, tmp_path / "notes")
    assert sorted(mapping.values()) == ["d/3", "d1", "d2"]
    name = next(k for k, v in mapping.items() if v == "d/3")
    assert "/" not in name
    assert (tmp_path / "notes" / "d1.md").read_text(encoding="utf-8").startswith("# Peering\n\nVirtual network")
    with pytest.raises(ev.EvalInputError, match="not a BEIR folder"):
        beir.load_beir(tmp_path / "notes")


def test_beir_eval_reports_all_modes(tmp_path, fake_model, capsys):
    _beir(tmp_path / "beir")
    code = main(["eval", "--beir", str(tmp_path / "beir"), "--work", str(tmp_path / "work"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["documents"], out["queries"]) == (3, 2)
    for mode in ("lexical", "dense", "hybrid"):
        assert set(out[mode]) == {"ndcg@10", "recall@100"}
        assert out[mode]["recall@100"] == 1.0
    assert out["lexical"]["ndcg@10"] == 1.0


def test_eval_reports_per_kind_and_language(vault, tmp_path, fake_model, capsys):
    qfile = tmp_path / "questions.jsonl"
    rows = [
        {"question": "archive tier rehydration", "gold_files": ["storage/storage.md"], "kind": "keyword",
         "lang": "en"},
        {"question": "peering link in each direction", "gold_files": ["storage/storage.md"], "kind": "paraphrase",
         "lang": "en"},
        {"question": "sourdough bread starter feeding", "gold_files": [], "kind": "unanswerable", "lang": "de"},
    ]
    qfile.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    args = [str(qfile), "--notes", str(vault), "--index", str(tmp_path / "index")]
    assert main(["eval", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kinds = out["by_kind"]
    assert list(kinds) == ["keyword", "paraphrase", "unanswerable"]
    assert kinds["keyword"]["hit@1"] == 1.0 and kinds["keyword"]["questions"] == 1
    assert kinds["paraphrase"]["hit@1"] == 0.0      # its gold note is deliberately the wrong one
    assert kinds["unanswerable"]["unanswerable_refused"] == 1 and kinds["unanswerable"]["hit@1"] is None
    assert out["by_lang"]["en"]["answerable"] == 2 and out["by_lang"]["en"]["hit@1"] == 0.5
    assert out["by_lang"]["de"]["unanswerable"] == 1
    # the classes: kind x language
    assert list(out["by_class"]) == ["keyword / en", "paraphrase / en", "unanswerable / de"]
    assert out["by_class"]["paraphrase / en"]["hit@1"] == 0.0 and out["by_class"]["keyword / en"]["hit@1"] == 1.0
    assert out["summary"]["hit@1"] == 0.5
    assert [r["kind"] for r in out["rows"]] == ["keyword", "paraphrase", "unanswerable"]

    assert main(["eval", *args]) == 0
    text = capsys.readouterr().out
    assert "by kind:" in text and "by lang:" in text and "by class:" in text
    assert next(l for l in text.splitlines() if l.strip().startswith("paraphrase / en")).split()[3:5] == ["1", "0.000"]
    line = next(l for l in text.splitlines() if l.strip().startswith("paraphrase"))
    assert line.split()[1:3] == ["1", "0.000"]


def test_eval_without_kinds_has_no_breakdown(vault, tmp_path, fake_model, capsys):
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text(json.dumps({"question": "archive tier rehydration", "gold_files": ["storage/storage.md"]})
                     + "\n", encoding="utf-8")
    assert main(["eval", str(qfile), "--notes", str(vault), "--index", str(tmp_path / "index"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "by_kind" not in out and "by_lang" not in out and "by_class" not in out


def test_beir_runs_in_a_private_folder_each_time_and_a_second_dataset_works(tmp_path, fake_model, capsys):
    _beir(tmp_path / "a")
    other = tmp_path / "b"
    write(other, "corpus.jsonl", json.dumps({"_id": "e1", "title": "Quokka", "text": "Quokkas eat leaves."}) + "\n"
          + json.dumps({"_id": "e2", "title": "Kiln", "text": "A kiln fires clay."}) + "\n")
    write(other, "queries.jsonl", json.dumps({"_id": "k1", "text": "what do quokkas eat"}) + "\n")
    write(other, "qrels/test.tsv", "k1\te1\t1\n")
    work = tmp_path / "work"
    for folder, documents in ((tmp_path / "a", 3), (other, 2)):
        assert main(["eval", "--beir", str(folder), "--work", str(work), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["documents"] == documents and out["lexical"]["recall@100"] == 1.0
        assert list(work.iterdir()) == []                  # the run's private folder is gone


def test_beir_notes_are_never_written_through_a_link_and_old_notes_go(tmp_path):
    _beir(tmp_path / "beir")
    notes = tmp_path / "notes"
    target = write(tmp_path, "precious.txt", "keep me\n")
    notes.mkdir()
    os.symlink(target, notes / "d1.md")                   # planted where a note will be written
    write(notes, "stale.md", "# From another dataset\n")
    mapping = beir.write_beir_notes(beir.load_beir(tmp_path / "beir"), notes)
    assert target.read_text() == "keep me\n"
    assert not (notes / "d1.md").is_symlink() and (notes / "d1.md").read_text().startswith("# Peering")
    assert sorted(p.name for p in notes.iterdir()) == sorted(mapping)
