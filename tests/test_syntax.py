"""Obsidian syntax becomes searchable text."""
from azchat.notes.syntax import LineCleaner, clean_inline, mermaid_text


def test_wikilinks_embeds_links_tags_and_emphasis():
    assert clean_inline("See [[Target Note|the label]] and [[Other#Part]]") == "See the label and Other Part"
    assert clean_inline("![[diagram.png]] [site](https://x.y) **bold** `code` #azure/storage") == \
        "diagram.png site bold code azure storage"
    assert clean_inline("<b>Hi</b> there") == "Hi there"


def test_callouts_quotes_lists_and_tables():
    c = LineCleaner()
    assert c.clean("> [!warning] Costs") == "Warning: Costs"
    assert c.clean("> Delete unused disks.") == "Delete unused disks."
    assert c.clean("- [x] done item") == "done item"
    assert c.clean("| LRS | 3 copies |") == "LRS ; 3 copies"
    assert c.clean("|---|:---:|") == ""


def test_mermaid_keeps_state_and_node_labels():
    assert mermaid_text("state MLWorkspace : Centralized place") == "ML Workspace: Centralized place"
    assert mermaid_text('A[Start here] --> B{Is it ok?}') == "Start here Is it ok?"
    assert mermaid_text("AzureML --> Storage : Integrates with") == "Azure ML Storage Integrates with"
    assert mermaid_text("stateDiagram-v2") == ""
    c = LineCleaner()
    assert [c.clean(l) for l in ["```mermaid", "state X : label", "```", "text"]] == ["", "X: label", "", "text"]


def test_code_fences_keep_code_and_ignore_headings_inside():
    c = LineCleaner()
    out = [c.clean(l) for l in ["```bash", "# not a heading", "az vm list", "```"]]
    assert out == ["", "# not a heading", "az vm list", ""]


def test_one_reading_of_code_fences():
    """CommonMark: only a bare fence of the same character, at least as long, closes a block."""
    from azchat.notes.syntax import code_lines

    lines = ["```", "```python", "# code", "~~~", "```", "# heading"]
    assert code_lines(lines) == [True, True, True, True, True, False]
    assert code_lines(["````md", "```", "inner", "```", "````", "text"]) == [True] * 5 + [False]
    assert code_lines(["~~~", "```", "~~~~", "text"]) == [True, True, True, False]
    assert code_lines(["```bash```", "# heading"]) == [False, False]      # inline code, not a block
    assert code_lines(["  ```", "  code in a list item", "  ```", "after"]) == [True, True, True, False]
    assert code_lines(["```", "never closed", "# still code"]) == [True, True, True]
    c = LineCleaner()
    assert [c.clean(l) for l in ["```", "```python", "# not a heading", "```", "x"]] == \
        ["", "```python", "# not a heading", "", "x"]


def test_the_block_open_at_each_line_is_read_over_the_known_lines_only():
    from azchat.notes.syntax import blocks_open_at

    lines = {3: "Intro.", 4: "```yaml", 5: "a: 1", 9: "b: 2", 10: "```", 12: "~~~~", 13: "```", 14: "~~~~", 15: "after"}
    assert blocks_open_at(lines) == {5: ("```", "yaml"), 9: ("```", "yaml"), 10: ("```", "yaml"),
                                     13: ("~~~~", ""), 14: ("~~~~", "")}


def test_an_indented_line_is_code_after_a_blank_line_but_not_inside_a_paragraph_or_a_list_item():
    from azchat.notes.syntax import indented_code_at

    note = {1: "Run this:", 2: "", 3: "    cat /etc/os-release", 4: "", 5: "    NAME=\"Ubuntu\"", 6: "    ID=ubuntu",
            8: "- an item", 9: "", 10: "    more text of the item", 12: "A paragraph", 13: "    continued"}
    assert indented_code_at(note, 3) and indented_code_at(note, 5) and indented_code_at(note, 6)
    assert not indented_code_at(note, 10)      # a list item's second paragraph
    assert not indented_code_at(note, 13)      # a paragraph's continuation line
    assert not indented_code_at(note, 1) and not indented_code_at(note, 8)
    assert indented_code_at({1: "    ls -la"}, 1)   # the note starts with it
