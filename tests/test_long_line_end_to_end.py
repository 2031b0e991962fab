"""The hostile long line, end to end with the real model: a fact in the middle of a 300 kB line without a
newline is found first and cited with the line it is on."""
from __future__ import annotations

import pytest

from azchat import build_index, Retriever

from conftest import assert_span, write

pytestmark = pytest.mark.slow

FACT = "The staging database password rotates every 45 days through the quuxvault policy."


def _export_line(target_bytes: int = 300_000) -> str:
    """An exported table flattened into one line: many short records, the fact halfway through."""
    records, k = [], 0
    while sum(len(r) + 1 for r in records) < target_bytes:
        k += 1
        records.append(f"Record {k} lists storage account acct{k % 53} in region {k % 11} with {k % 5} replicas.")
    half = len(records) // 2
    return " ".join(records[:half] + [FACT] + records[half:])


def test_a_fact_in_the_middle_of_a_300kb_line_is_rank_1_with_its_true_line(tmp_path):
    notes = tmp_path / "notes"
    line = _export_line()
    write(notes, "exports/assets.md", "# Asset export\n\nExported from the asset tool.\n" + line)
    write(notes, "passwords.md", "# Passwords\n\nChange a password at once when it leaks.\n")
    assert (notes / "exports/assets.md").stat().st_size > 300_000 and "\n" not in line
    build_index(notes, tmp_path / "index")
    r = Retriever(tmp_path / "index")
    question = "How often does the staging database password rotate?"
    top = r.search(question, k=5)[0]
    assert (top.path, top.start_line, top.end_line) == ("exports/assets.md", 4, 4)
    assert FACT in top.text
    answer = r.ask(question)
    cited = [c for c in answer.citations if "45 days" in c.snippet]
    assert answer.found and cited
    assert (cited[0].path, cited[0].start_line, cited[0].end_line) == ("exports/assets.md", 4, 4)
    assert_span(notes, "exports/assets.md", 4, 4, cited[0].snippet)
