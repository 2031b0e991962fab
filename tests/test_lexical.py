"""Tokenization for English and German: stemming, stopwords, compound splitting against the corpus vocabulary."""
from azchat.index.analysis import document_tokens, question_tokens, split_compound, stem, tokenize
from azchat.index.lexical import LexicalIndex, LexicalSettings


def test_english_and_german_words_meet_their_inflections():
    assert tokenize("Peering virtual networks") == tokenize("peered virtual network")
    assert tokenize("VNets")[0] == tokenize("vnet")[0]
    assert stem("deployments") == stem("deployment")
    assert tokenize("die Netzwerke und Dateien") == tokenize("Netzwerk Datei")
    assert stem("Größen".lower()) == stem("größe")
    assert tokenize("the and der die das") == []      # stopwords of both languages
    assert tokenize("port 443") == ["port", "443"]     # numbers stay as they are


def test_compounds_split_into_known_parts_only():
    vocab = {"speicher", "konto", "zugriff", "schlüssel", "netzwerk", "sicherheit"}
    assert split_compound("speicherkonto", vocab) == ["speicher", "konto"]
    assert split_compound("zugriffsschlüssel", vocab) == ["zugriff", "schlüssel"]   # linking s
    assert split_compound("netzwerksicherheit", vocab) == ["netzwerk", "sicherheit"]
    assert split_compound("speicherplatz", vocab) == []                           # 'platz' unknown
    assert split_compound("konto", vocab) == []                                   # too short to split


def test_bm25_finds_a_compound_by_its_parts_and_parts_by_the_compound():
    texts = ["Titel\nDas Speicherkonto hat Zugriffsschlüssel.",
             "Titel\nEin Konto beim Speicher Anbieter.",
             "Titel\nDer Schlüssel für den Zugriff.",
             "Titel\nVöllig anderes Thema über Katzen."]
    idx = LexicalIndex.build(texts)
    # the query names the parts; the first text only has the compound
    scores = idx.scores("Zugriff Schlüssel")
    assert scores[0] > 0 and scores[3] == 0
    # the query names the compound; texts with the parts match too
    scores = idx.scores("Speicherkonto")
    assert scores[0] > scores[1] > 0 and scores[3] == 0
    plain = LexicalIndex.build(texts, LexicalSettings(compounds=False))
    assert plain.scores("Speicherkonto")[1] == 0


def test_title_line_is_boosted_and_settings_survive_save(tmp_path):
    texts = ["Kubernetes Pods\nsomething about clusters and nodes",
             "Other note\nsomething about kubernetes pods in passing and clusters"]
    idx = LexicalIndex.build(texts)
    s = idx.scores("kubernetes pods")
    assert s[0] > s[1]
    idx.save(tmp_path / "bm25")
    again = LexicalIndex.load(tmp_path / "bm25", 2)
    assert again.settings == idx.settings
    assert list(again.scores("kubernetes pods")) == list(s)


def test_an_index_from_older_tokenization_rules_is_rebuilt_without_re_embedding(vault, tmp_path, fake):
    from azchat.config import ChunkSettings
    from azchat.index.building import build_index
    from azchat.index.changes import is_stale

    build_index(vault, tmp_path / "index", embedder=fake, settings=ChunkSettings(version=1))
    assert is_stale(vault, tmp_path / "index")            # the CLI updates it before searching
    stats = build_index(vault, tmp_path / "index", embedder=fake)
    assert "chunker" in stats.full_rebuild_reason and stats.embedded == 0
    assert not is_stale(vault, tmp_path / "index")


def test_stemming_is_safe_from_many_threads_at_once():
    # the chat server answers questions concurrently; snowball stemmers keep per-word state
    import random
    import threading

    from azchat.index.analysis import stem

    rnd = random.Random(7)
    words = ["".join(rnd.choice("abcdefghilmnoprstuy") for _ in range(rnd.randint(5, 12))) + suffix
             for suffix in ("ing", "ness", "ations", "ies", "ed", "s", "ungen", "heit") for _ in range(600)]
    stem.cache_clear()
    expected = [stem(w) for w in words]
    failures, got = [], {}

    def work(n):
        try:
            got[n] = [stem(w) for w in words[n::8]]
        except Exception as exc:   # an IndexError from a shared stemmer
            failures.append(exc)

    for _ in range(3):
        stem.cache_clear()
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert failures == []
        for n in range(8):
            assert got[n] == expected[n::8]


def test_commands_reach_bm25_and_a_question_drops_only_its_own_languages_stopwords():
    # the index keeps every word: commands that look like stopwords (du, man, bin, hat) are searchable
    assert document_tokens("use du -sh and man pages in /usr/bin on Red Hat") == \
        ["use", "du", "sh", "and", "man", "page", "in", "usr", "bin", "on", "red", "hat"]
    # an English question drops English stopwords only; a German one drops German (and English) ones
    assert question_tokens("use du -sh and man pages in /usr/bin on Red Hat") == \
        ["use", "du", "sh", "man", "page", "usr", "bin", "red", "hat"]
    assert question_tokens("Wie zeigst du an, was ein Ordner belegt?") == ["zeigst", "ordner", "belegt"]
    texts = ["Disk\nRun du -sh * to see folder sizes.", "Manual\nRead the man pages.", "Other\nNothing here."]
    idx = LexicalIndex.build(texts)
    assert idx.scores("how do I use du")[0] > 0 == idx.scores("how do I use du")[2]
    assert int(idx.scores("man pages").argmax()) == 1


def test_an_index_keeps_the_tokenization_it_was_built_with(tmp_path):
    texts = ["Disk\nRun du -sh to see folder sizes.", "Other\nNothing here about disks."]
    old = LexicalIndex.build(texts, LexicalSettings(version=2))       # the rules before version 3
    assert old.scores("du")[0] == 0                                  # "du" was a stopword everywhere
    old.save(tmp_path / "old")
    again = LexicalIndex.load(tmp_path / "old", len(texts))
    assert again.settings.version == 2 and again.query_tokens("run du") == ["run"]
    new = LexicalIndex.build(texts)
    new.save(tmp_path / "new")
    assert LexicalIndex.load(tmp_path / "new", len(texts)).query_tokens("run du") == ["run", "du"]


def test_bm25_written_in_batches_scores_exactly_as_bm25s_builds_it(tmp_path):
    """BM25Writer (postings as arrays, no token lists) gives the scores, vocabulary and IDF of LexicalIndex.build
    with bm25s, compounds and an empty chunk included; both folders open with LexicalIndex.load (mmap)."""
    import numpy as np

    from azchat.index.bm25_writer import BM25Writer

    texts = ["Titel\nDas Speicherkonto hat Zugriffsschlüssel.", "Titel\nEin Konto beim Speicher Anbieter.",
             "Titel\nDer Schlüssel für den Zugriff.", "Cats\nVöllig anderes Thema über Katzen.",
             "Peering\nPeering virtual networks: peered VNets route traffic privately; peering peering.",
             "Empty\n", "Ports\nport 443 and port 80, du -sh /usr/bin"]
    ref = LexicalIndex.build(texts)
    ref.save(tmp_path / "ref")
    writer = BM25Writer()
    for t in texts:
        writer.add(t)
    assert writer.save(tmp_path / "batched") == len(texts)
    a = LexicalIndex.load(tmp_path / "ref", len(texts))
    b = LexicalIndex.load(tmp_path / "batched", len(texts))
    vocab = set(ref._bm25.vocab_dict) - {""}
    assert set(b._bm25.vocab_dict) - {""} == vocab
    for query in [*vocab, "speicherkonto zugriff", "peering vnet port 443", "Katzen Thema", "nothing here"]:
        want = ref.scores(query)
        np.testing.assert_array_equal(a.scores(query), want)
        np.testing.assert_allclose(b.scores(query), want, rtol=1e-6, atol=0)
        assert b.idf(sorted(vocab)) == a.idf(sorted(vocab))
    assert a.scores("peering").argmax() == 4
    small = BM25Writer()
    small.BLOCK = 3                     # compounds expanded and scores computed a few postings at a time
    for t in texts:
        small.add(t)
    small.save(tmp_path / "blocks")
    c = LexicalIndex.load(tmp_path / "blocks", len(texts))
    for query in [*vocab, "speicherkonto zugriff"]:
        np.testing.assert_array_equal(c.scores(query), b.scores(query))


def test_bm25_written_in_runs_on_disk_writes_the_same_files_as_in_one_run(tmp_path):
    """A full build's BM25Writer spills its postings to disk in runs and merges them by token when saved: with
    runs of a few postings and merge ranges of a few postings every file is byte-identical to one run's (the
    same scores, vocabulary and IDF), and the spill file leaves nothing behind."""
    import numpy as np

    from azchat.index.bm25_writer import BM25Writer

    texts = ["Titel\nDas Speicherkonto hat Zugriffsschlüssel.", "Titel\nEin Konto beim Speicher Anbieter.",
             "Titel\nDer Schlüssel für den Zugriff.", "Cats\nVöllig anderes Thema über Katzen.",
             "Peering\nPeering virtual networks: peered VNets route traffic privately; peering peering.",
             "Empty\n", "Ports\nport 443 and port 80, du -sh /usr/bin", ""] * 3
    texts += [f"Note {i}\nword{i % 7} shared text storage account key {i}" for i in range(40)]
    one = BM25Writer()
    for t in texts:
        one.add(t)
    one.save(tmp_path / "one")
    spill = tmp_path / "spill"
    spill.mkdir()
    for run, block in ((1, 1), (5, 3), (64, 1 << 22), (1 << 19, 2)):
        runs = BM25Writer(spill=spill)
        runs.RUN, runs.BLOCK = run, block
        for t in texts:
            runs.add(t)
        assert run > 1000 or len(runs._runs) > 1
        assert runs.save(tmp_path / f"runs-{run}") == len(texts)
        for f in sorted((tmp_path / "one").iterdir()):
            assert (tmp_path / f"runs-{run}" / f.name).read_bytes() == f.read_bytes(), (run, f.name)
    assert list(spill.iterdir()) == []
    a, b = LexicalIndex.load(tmp_path / "one", len(texts)), LexicalIndex.load(tmp_path / "runs-5", len(texts))
    for query in ["speicherkonto zugriff", "peering vnet port 443", "word3 storage", "traffic privately"]:
        np.testing.assert_array_equal(b.scores(query), a.scores(query))
        assert a.scores(query).any()
