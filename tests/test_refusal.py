"""The "not in your notes" decision (refusal.py): what counts as a name the notes never mention, the thresholds."""
import pytest

from azchat import Retriever, build_index
from azchat.notes.language import is_common_word
from azchat.index.analysis import is_german
from azchat.search.refusal import Refusal

from conftest import write


@pytest.fixture
def retriever(vault, tmp_path, fake):
    write(vault, "fabric.md", "## Fabric\n\nPatterns are prompts; Stitches chain Patterns.\n\n"
                              "Install it: `git clone https://github.com/danielmiessler/fabric`\n\n"
                              "The selfservice portal resets passwords.\n\n"
                              "```mermaid\ngraph TD\n  A[Zorblax] --> B\n```\n\n"
                              "Use count_index to number the copies of a module.\n")
    build_index(vault, tmp_path / "index", embedder=fake)
    return Retriever(tmp_path / "index", embedder=fake)


def test_a_name_inside_the_notes_text_is_not_unknown(retriever):
    refusal = retriever.refusal
    assert isinstance(refusal, Refusal)
    # "danielmiessler" is one token of a URL: BM25 never sees "miessler", the notes still say it
    assert refusal.unknown_terms("What are Patterns and Stitches in Miessler's Fabric tool?") == []
    # a name in a diagram is a mention, too
    assert refusal.unknown_terms("What does Zorblax do?") == []
    assert refusal.unknown_terms("What does Ansible say about Fabric Patterns?") == ["Ansible"]
    # a short name inside a longer word is not a mention ("LFS" in "selfservice")
    assert refusal.unknown_terms("How do I track big files with Git LFS?") == ["LFS"]


def test_an_unknown_name_is_found_whatever_its_case_or_the_questions_language(retriever):
    refusal = retriever.refusal
    for question, name in [("How do I run models locally with ollama?", "ollama"),
                           ("Wie richte ich Tailscale auf meinem Server ein?", "Tailscale"),
                           ("wie sichere ich daten mit restic?", "restic"),
                           ("How do I peer networks with WireGuard?", "WireGuard"),
                           ("How do I test a chart with helm-unittest?", "unittest")]:
        assert name in refusal.unknown_terms(question), question
    # a code identifier is looked up whole: count_index is in the notes, for_each is not
    assert refusal.unknown_terms("How do I use count_index in a module?") == []
    assert refusal.unknown_terms("How do I use for_each in a module?") == ["for_each"]


def test_ordinary_words_the_notes_never_use_are_no_names(retriever):
    # a paraphrase uses words its note does not; in a German question every noun has its capital
    refusal = retriever.refusal
    assert refusal.unknown_terms("What happens to my forgotten passwords afterwards?") == []
    assert refusal.unknown_terms("Wie viele Anmeldeversuche erlaubt die Zugriffsebene?") == []
    assert refusal.unknown_terms("Wann beginnt die Sommerzeit?") == []


def test_common_words_and_compounds_are_told_from_names():
    for word in ["recipe", "afterwards", "autumn", "gotchas", "Netzwerke", "Anmeldeversuche", "zurückschreiben",
                 "Weboberfläche", "Speicherkonto", "abweist"]:
        assert is_common_word(word), word
    # names made of English words are no German compounds ("tail" + "scale", "wire" + "guard")
    for word in ["Tailscale", "WireGuard", "Vaultwarden", "Jellyfin", "restic", "Podman", "Ollama", "for_each", "x86"]:
        assert not is_common_word(word), word


def test_a_name_the_notes_never_mention_raises_the_bar(retriever, monkeypatch):
    s = retriever.refusal.settings
    assert s.min_confidence < s.name_confidence
    scored = [(0, 1.0, 0.5, 1.0)]
    between = (s.min_confidence + s.name_confidence) / 2
    for conf, question, refused in [
            (between, "How do Patterns chain with Ansible?", True),       # a name the notes never mention
            (between, "How do Patterns chain?", False),
            (between, "How do Patterns chain in autumn?", False),         # an ordinary unknown word
            (s.name_confidence + 0.01, "How do Patterns chain with Ansible?", False),
            (s.min_confidence - 0.01, "How do Patterns chain?", True)]:
        monkeypatch.setattr(retriever.refusal, "confidence", lambda q, sc, best_cos=None, c=conf: c)
        assert retriever.refusal.refuses(question, scored) is refused, (conf, question)
        assert retriever.ask(question).found is not refused, (conf, question)


def test_nothing_ranked_is_always_refused(retriever):
    assert retriever.refusal.refuses("How do Patterns chain?", []) is True


def test_german_is_told_by_function_words_that_are_not_english_ones():
    assert is_german("Wann beginnt die Sommerzeit in Deutschland?")
    assert is_german("Was unterscheidet Zed AI von Cursor?")
    assert is_german("Wie lange muss ein Ei kochen?")
    # "man", "bin", "hat", "des" are words of technical English too
    assert not is_german("use du -sh and man pages in /usr/bin on Red Hat")
    assert not is_german("What was my one-liner for listing every service that listens on a port?")


def test_the_index_word_table_answers_as_the_frequency_lists_do(tmp_path):
    from azchat.notes import language

    words = ["Tailscale", "restic", "recipe", "afterwards", "Anmeldeversuche", "abweist", "Größe", "Straße",
             "zurückschreiben", "for_each", "Ollama", "terabyte"]
    before = [language.is_common_word(w) for w in words]
    zipfs = [language.zipf(w) for w in ["größe", "recipe", "versuche"]]
    try:
        assert language.open_table(tmp_path) is False          # no table yet: the lists themselves are read
        assert language.write_table(tmp_path) == language.table_path(tmp_path)
        assert language.open_table(tmp_path) is True
        assert [language.is_common_word(w) for w in words] == before
        # the table keeps the words that matter to the decision exactly (Zipf >= 2, to the hundredth)
        assert [language.zipf(w) for w in ["größe", "recipe", "versuche"]] == zipfs
        assert language.zipf("xqzvvbnt") == 0.0
        # a damaged table is not used
        language.table_path(tmp_path).write_bytes(b"not a table")
        language._table = None
        assert language.open_table(tmp_path) is False
    finally:
        language._table = None
        language._clear_caches()
