"""The "not in your notes" decision (refusal.py): what counts as a name the notes never mention, the thresholds."""
import pytest

from azchat import Retriever, build_index
from azchat.lexical import is_german
from azchat.refusal import Refusal, RefusalSettings, name_phrases

from conftest import write


@pytest.fixture
def retriever(vault, tmp_path, fake):
    write(vault, "fabric.md", "## Fabric\n\nPatterns are prompts; Stitches chain Patterns.\n\n"
                              "Install it: `git clone https://github.com/danielmiessler/fabric`\n\n"
                              "The selfservice portal resets passwords.\n\n"
                              "The proxy manager renews every certificate; nginx serves the home page; let the assistant "
                              "read it. "
                              "Certificates come from letsencrypt.org; see the **Home**-*Page* checklist.\n")
    build_index(vault, tmp_path / "index", embedder=fake)
    return Retriever(tmp_path / "index", embedder=fake)


def test_a_name_inside_the_notes_text_is_not_unknown(retriever):
    refusal = retriever.refusal
    assert isinstance(refusal, Refusal)
    # "danielmiessler" is one token of a URL: BM25 never sees "daniel" or "miessler", the notes still say them
    assert refusal.unknown_names("What are Patterns and Stitches in Daniel Miessler's Fabric tool?") == []
    assert refusal.unknown_names("What does Ansible say about Fabric Patterns?") == ["Ansible"]
    # a short name inside a longer word is not a mention ("LFS" in "selfservice")
    assert refusal.unknown_names("How do I track big files with Git LFS?") == ["LFS"]


def test_a_name_made_of_ordinary_words_is_unknown_unless_the_notes_have_those_words_in_a_row(retriever):
    refusal = retriever.refusal
    # every word is in the notes ("nginx", "proxy", "manager", "home", "let", "encrypt"...), never the name
    assert refusal.unknown_names("How do I get certificates working with Nginx Proxy Manager?") == [
        "Nginx Proxy Manager"]
    assert refusal.unknown_names("How did I connect my lamps to Home Assistant?") == ["Home Assistant"]
    # the words in a row, with any punctuation or case between them, or run together (a URL) are a mention
    assert refusal.unknown_names("Which checklist is on the Home Page?") == []
    assert refusal.unknown_names("Where do the Let's Encrypt certificates come from?") == []
    # a German sentence capitalizes its nouns: no run of capitals is a name there
    assert refusal.unknown_names("Wie verbinde ich meine Lampen mit dem Proxy Manager Dienst?") == []


def test_name_phrases_are_runs_of_capitals_inside_a_sentence():
    assert name_phrases("How do I get Let's Encrypt certificates working with Nginx Proxy Manager?") == [
        "Let's Encrypt", "Nginx Proxy Manager"]
    # a sentence's first word is not part of a name; punctuation ends a run
    assert name_phrases("Home Assistant: Where Is it? Proxy, Manager and more") == []
    assert name_phrases("Set it up in Home Assistant, then in Nginx Proxy Manager.") == [
        "Home Assistant", "Nginx Proxy Manager"]
    assert name_phrases("Is purge protection of the Key Vault (Soft Delete) enabled?") == ["Key Vault", "Soft Delete"]
    assert name_phrases('Where is "Nginx Proxy Manager" set up?') == ["Nginx Proxy Manager"]
    # a question in Title Case has no runs to trust
    assert name_phrases("How Do I Set Up WireGuard On My Home Server") == []


def test_a_rare_word_inside_the_notes_text_is_not_unknown(retriever, monkeypatch):
    refusal = retriever.refusal
    monkeypatch.setattr(refusal.embedder, "count_tokens", lambda ws: [3] * len(ws))   # every word is rare
    assert refusal.rare_unknown_words("where is the miessler clone of fabric") == []
    assert refusal.rare_unknown_words("where is the helmunittest clone of fabric") == ["helmunittest"]


@pytest.mark.parametrize("settings", [RefusalSettings(), RefusalSettings(min_confidence=0.1, name_confidence=0.2,
                                                                         rare_confidence=0.3)])
def test_a_name_or_a_rare_word_the_notes_never_mention_asks_for_more_confidence(retriever, monkeypatch,
                                                                                 settings):
    """The same confidence answers a question about what the notes mention, refuses one that names a name
    they never mention unless it reaches name_confidence, and one with a rare word they never mention unless
    it reaches rare_confidence: three made-up questions at confidences between the thresholds."""
    refusal = Refusal(retriever.chunks, retriever._lexical, retriever.embedder, settings=settings)
    rare = {"helmunittest"}                  # the model's vocabulary: only this word is split into pieces
    monkeypatch.setattr(refusal.embedder, "count_tokens", lambda ws: [3 if w in rare else 1 for w in ws])
    questions = {"plain": "How do Patterns chain Stitches?",
                 "name": "What does Ansible say about Patterns?",
                 "rare": "where is the helmunittest clone of fabric"}
    assert refusal.unknown_names(questions["name"]) == ["Ansible"] and not refusal.rare_unknown_words(questions["name"])
    assert refusal.rare_unknown_words(questions["rare"]) == ["helmunittest"]
    s = settings
    table = {  # confidence -> the questions refused
        s.min_confidence - 0.01: {"plain", "name", "rare"},
        (s.min_confidence + s.name_confidence) / 2: {"name", "rare"},
        (s.name_confidence + s.rare_confidence) / 2: {"rare"},
        s.rare_confidence + 0.01: set(),
    }
    scored = [(0, 1.0, 0.5, 1.0)]
    for conf, refused in table.items():
        monkeypatch.setattr(refusal, "confidence", lambda q, sc, best_cos=None, c=conf: c)
        got = {kind for kind, q in questions.items() if refusal.refuses(q, scored)}
        assert got == refused, (conf, got)
    assert refusal.refuses(questions["plain"], []) is True            # no hits: nothing to answer from


def test_a_low_confidence_question_is_refused_and_a_confident_one_answered(retriever, monkeypatch):
    s = retriever.refusal.settings
    scored = [(0, 1.0, 0.5, 1.0)]
    for conf, refused in [(s.min_confidence - 0.01, True), (s.min_confidence + 0.01, False)]:
        monkeypatch.setattr(retriever.refusal, "confidence", lambda q, sc, best_cos=None, c=conf: c)
        assert retriever.refusal.refuses("How do Patterns chain?", scored) is refused
        assert retriever.ask("How do Patterns chain?").found is not refused


def test_german_is_told_by_function_words_that_are_not_english_ones():
    assert is_german("Wann beginnt die Sommerzeit in Deutschland?")
    assert is_german("Was unterscheidet Zed AI von Cursor?")
    assert is_german("Wie lange muss ein Ei kochen?")
    # "man", "bin", "hat", "des" are words of technical English too
    assert not is_german("use du -sh and man pages in /usr/bin on Red Hat")
    assert not is_german("What was my one-liner for listing every service that listens on a port?")
