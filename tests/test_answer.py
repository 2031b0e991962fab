"""The extractive answer: the answering sentence over the first one, lists and table rows kept whole.

Every fixture is a small made-up note (never a passage of a real vault): each test states a general property of
the composer, shown on text written for it."""
import pytest

from azchat.answer.extractive import compose
from azchat.answer.scoring import score_units
from azchat.answer.segmenting import segment
from azchat.types import Chunk, Hit


def _chunk(text: str, start: int = 10, title: str = "Note", heading: str = "Note") -> Chunk:
    return Chunk(id="c", path="note.md", title=title, heading=heading, start_line=start,
                 end_line=start + text.count("\n"), text=text, embed_text=text, search_text=text)


def _ask(question: str, chunk: Chunk):
    hit = Hit(rank=1, path=chunk.path, title=chunk.title, heading=chunk.heading, start_line=chunk.start_line,
              end_line=chunk.end_line, score=1.0, text=chunk.text)
    return compose(question, [hit], [chunk], {}, True)


def test_the_answering_sentence_is_chosen_over_the_first():
    text = ("## Kiln\n\nThe kiln is a brick oven for firing clay pots. It comes with two shelves and a door latch. "
            "Pieces need a 12-hour cooling period before unloading. Glazes are stored in the shed.")
    ans = _ask("How long must the pieces in the kiln cool before unloading?", _chunk(text))
    assert ans.found
    first = ans.citations[0]
    assert "12-hour cooling period" in first.snippet
    assert "brick oven" not in ans.answer       # the first sentence does not answer: not quoted
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(12, 12)]
    assert all("shelves" not in c.snippet for c in ans.citations)


def test_a_list_under_a_matching_intro_is_quoted_whole():
    text = ("To publish a recipe with loaf run these commands in order:\n"
            "- loaf check\n- loaf bake\n- loaf serve\n\nSomething else entirely about flour.")
    ans = _ask("Which commands publish a recipe with loaf in order?", _chunk(text, start=5))
    c = ans.citations[0]
    assert (c.start_line, c.end_line) == (5, 8)
    assert "- loaf check\n- loaf bake\n- loaf serve" in c.snippet
    body = ans.answer.split("Sources:")[0]
    assert "loaf check" in body and "loaf serve" in body
    assert len([x for x in ans.citations if x.start_line <= 6 <= x.end_line]) == 1   # items not quoted twice


def test_table_rows_are_kept_whole_with_their_header():
    text = ("| Shelf | Humidity | Use |\n|---|---|---|\n| Cellar | damp, stays cool | root vegetables |\n"
            "| Attic | dry, needs airing | dried herbs and seeds |")
    units = segment(_chunk(text, start=3))
    rows = [u for u in units if u.kind == "row"]
    assert [u.start_line for u in rows] == [5, 6]      # the header row is shown in each row instead
    assert rows[1].text == "| Attic | dry, needs airing | dried herbs and seeds |"
    assert rows[1].display == "Shelf: Attic; Humidity: dry, needs airing; Use: dried herbs and seeds"
    ans = _ask("What is the humidity of the attic shelf?", _chunk(text, start=3))
    assert [c.start_line for c in ans.citations] == [6]
    assert "Attic" in ans.answer and "dry" in ans.answer


def test_heading_words_help_pick_the_sentence_under_them():
    text = "## kiln vent\n\nLets steam escape during the first hour of a firing."
    chunk = _chunk(text, title="Working with the Kiln", heading="Working with the Kiln > kiln vent")
    # the sentence shares no word with the question: only its heading's words make it score
    assert score_units("What does the kiln vent do?", segment(chunk), {}, f"{chunk.title} {chunk.heading}")[0] > 0
    ans = _ask("What does the kiln vent do?", chunk)
    assert ans.found and "steam escape" in ans.citations[0].snippet


def test_the_code_under_an_intro_line_is_quoted_with_it():
    text = "Beete gießen und düngen.\n\nBeet düngen:\n\n```bash\ngartl dung Tomatenbeet\n```\n"
    ans = _ask("Wie kann ich ein Beet düngen?", _chunk(text, start=90))
    c = next(c for c in ans.citations if "gartl" in c.snippet)
    assert (c.start_line, c.end_line) == (92, 95)
    assert "gartl dung Tomatenbeet" in c.snippet and c.snippet.startswith("Beet düngen:")
    assert "gartl dung Tomatenbeet" in ans.answer


def test_merged_snippets_are_exact_spans_of_the_chunk():
    from azchat.answer.scoring import score_units
    from azchat.answer.selecting import with_blocks as _with_blocks

    text = "Run these commands:\n\n- loaf check\n- loaf bake\n\n`loaf serve` serves."
    chunk = _chunk(text, start=1)
    units = segment(chunk)
    for unit, _ in _with_blocks(units, score_units("loaf commands", units, {}), chunk):
        assert unit.text in text


def test_link_lists_and_image_names_are_not_quoted_as_answers():
    text = ("Citations: [1] https://quillpad.example/blog/quill-notes [2] https://quillpad.example/blog/margins\n\n"
            "Quill Notes differs from Inkwell by its margin pane and stamp commands.\n\n"
            "![[Pasted image 20190304120000.png]]")
    ans = _ask("How does Quill Notes differ from Inkwell?", _chunk(text, start=1, title="Quill Notes"))
    assert [c.start_line for c in ans.citations] == [3]
    # Obsidian names pasted images "Pasted image 2019....png", often under a folder: the name matches the
    # note's words ("loaf") but shows nothing
    text = ("## Basics\n\nloaf proof rests the dough before the first bake.\n\n"
            "![[_notes/kitchen/Bread/Pasted image loaf proof bake.png]]\n\n"
            "![loaf proof bake output](assets/loaf proof bake.png)")
    ans = _ask("What does loaf proof do before loaf bake?", _chunk(text, start=1, title="Loaf"))
    assert [c.start_line for c in ans.citations] == [3]


def test_a_sentence_right_above_an_inline_command_is_quoted_with_it():
    text = ("## Photos\n\nI now use this to list the twenty largest photos in a text file.\n\n"
            "`du -a photos | sort -n | tail -20 > large.txt`\n\nSomething else entirely.")
    ans = _ask("list the twenty largest photos in a text file", _chunk(text, start=1))
    assert "tail -20" in ans.answer
    c = ans.citations[0]
    assert (c.start_line, c.end_line) == (3, 5) and c.snippet.endswith("large.txt`")


def test_a_trailing_comment_brings_the_command_above_it():
    text = "## Garden\n\n```shell\nhose drain --all\n# Empty all hoses, barrels and watering cans\n```"
    ans = _ask("empty hoses barrels watering cans", _chunk(text, start=40))
    assert "hose drain --all" in ans.answer
    assert (ans.citations[0].start_line, ans.citations[0].end_line) == (43, 44)


def test_indented_sub_items_are_quoted_with_their_line():
    text = ("## Commands\n\nloaf check - checks the recipe\nloaf knead - kneads\n"
            "\t- kneads the dough to a smooth texture\n\t- also with -twice\nloaf serve")
    ans = _ask("What does loaf knead do?", _chunk(text, start=1))
    assert "smooth texture" in ans.answer
    cited = [c for c in ans.citations if "smooth" in c.snippet]
    assert cited and cited[0].end_line == 6


def test_a_comment_between_commands_reads_with_the_command_above_and_below():
    text = "## Env\n\n```\nnano ~/.shellrc\n# append lines at the end of the file:\nexport B=2\n```"
    ans = _ask("append an export line to the file", _chunk(text, start=1))
    assert "~/.shellrc" in ans.answer and "export B=2" in ans.answer
    assert (ans.citations[0].start_line, ans.citations[0].end_line) == (4, 6)


def test_a_one_line_triple_backtick_span_is_code_not_an_open_fence():
    text = "## Disks\n\nShow every mounted disk with its free space:\n```df -h | grep /mnt```\n\n### Groups\n" \
           "Add a user to the audio group."
    units = segment(_chunk(text, start=1))
    assert [(u.kind, u.display) for u in units if u.kind == "code"] == [("code", "df -h | grep /mnt")]
    assert any(u.display == "Add a user to the audio group." and u.kind == "sentence" for u in units)
    ans = _ask("show mounted disks with their free space", _chunk(text, start=1))
    assert "df -h" in ans.answer and "audio group" not in ans.answer


def test_a_section_that_is_only_code_is_introduced_by_its_own_heading():
    text = "#### check which disks are mounted:\n```shell\nlsblk -f\n```"
    code = Chunk(id="c", path="disks.md", title="Storage", heading="Storage > check which disks are mounted:",
                 start_line=37, end_line=40, text=text, embed_text=text, search_text=text)
    other = _chunk("## Disks\n\nBy default the installer formats the disks that no mounted volume needs.", start=50)
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.1 * n, text=c.text) for n, c in enumerate([code, other], 1)]
    ans = compose("which disks are mounted where", hits, [code, other], {}, True)
    assert "lsblk -f" in ans.answer
    cited = [c for c in ans.citations if "lsblk -f" in c.snippet]
    assert (cited[0].path, cited[0].start_line, cited[0].end_line) == ("disks.md", 39, 39)


def test_a_command_continued_over_lines_is_one_unit_with_its_exact_span():
    text = ("## Frames\n\n```bash\nhivectl frame add --hive north \\\n  --box upper \\\n"
            "  --count $frames\n\nhivectl frame list -o table\n```")
    units = [u for u in segment(_chunk(text, start=20)) if u.kind == "code"]
    assert [(u.start_line, u.end_line) for u in units] == [(23, 25), (27, 27)]
    assert units[0].text == "hivectl frame add --hive north \\\n  --box upper \\\n  --count $frames"
    assert units[0].text in text                       # still the exact text of those lines
    assert units[0].display == "hivectl frame add --hive north --box upper --count $frames"


def test_a_chunk_that_starts_inside_a_code_block_reads_its_lines_as_code():
    text = "  --count 4\n\nhivectl frame list -o table\n```\n\nThe list shows Ready."
    units = segment(_chunk(text, start=65))
    kinds = {u.display: u.kind for u in units}
    assert kinds["hivectl frame list -o table"] == "code"
    assert kinds["The list shows Ready."] == "sentence"
    # a chunk whose first fence opens a block is read normally
    opened = segment(_chunk("Try this:\n```bash\npwd\n```", start=1))
    assert [(u.kind, u.display) for u in opened] == [("sentence", "Try this:"), ("code", "pwd")]


def test_question_words_match_unit_words_up_to_an_inflection_ending():
    from azchat.answer.scoring import near_matches as _near_matches, score_units
    from azchat.answer.segmenting import Unit
    # the stemmer is English: German 'bepflanze' -> bepflanz, 'bepflanzen' stays; the answer scorer still pairs them
    assert _near_matches({"speicher"}, {"speichern"}) == {"speicher"}
    assert _near_matches({"verbindet"}, {"verbinden", "garten"}) == {"verbindet"}
    assert _near_matches({"basket"}, {"basketball"}) == set()     # more than an ending apart
    assert _near_matches({"format"}, {"formal"}) == set()
    units = [Unit(t, t, n, n, "sentence") for n, t in enumerate(
        ["Ein Beet bepflanzen geht mit der Kelle.", "Ein Beet umgraben geht mit dem Spaten."], start=1)]
    scores = score_units("Wie bepflanze ich ein Beet?", units, {})
    assert scores[0] > scores[1]


def test_a_code_section_is_found_through_an_inflected_heading_word():
    text = "### Jungpflanzen pikieren\n```\ngartl prick --tray 3\n```"
    code = Chunk(id="c", path="garten.md", title="gartl", heading="gartl > Jungpflanzen pikieren", start_line=42,
                 end_line=45, text=text, embed_text=text, search_text=text)
    other = _chunk("## Töpfe\n\nSetzlinge in einen anderen Topf umsetzen:\n```\ngartl move topf2\n```", start=1)
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.1 * n, text=c.text) for n, c in enumerate([code, other], 1)]
    ans = compose("Wie pikiere ich Setzlinge in einen anderen Topf?", hits, [code, other], {}, True)
    assert "gartl prick" in ans.answer


def test_a_loose_list_of_single_items_is_one_list_but_separate_groups_stay_apart():
    from azchat.answer.selecting import blocks
    loose = _chunk("### Wildblumen Mischung\n- Bienen, Hummeln, Falter, Käfer\n\n"
                   "- https://saatgut.example/mischung-klassik\n", start=24)
    ans = _ask("Welche Mischung ernährt Bienen, Hummeln, Falter und Käfer?", loose)
    assert "mischung-klassik" in ans.answer
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(25, 27)]
    groups = _chunk("- a one\n- a two\n\n- b one\n- b two\n\n- c", start=1)
    assert blocks(segment(groups), chunk=groups) == [(0, 1), (2, 3)]
    heading_between = _chunk("- a one\n## Other\n- b one", start=1)
    assert blocks(segment(heading_between), chunk=heading_between) == []


def test_a_sentence_that_refers_back_to_the_code_above_is_quoted_with_it():
    text = ("### Seed Labels\n\n```bash\nls seeds/ | seedtag -p print\n```\n\n"
            "This reads the names in your seed folder and prints a label for each of them.")
    ans = _ask("How can I print a label for each name in my seed folder?", _chunk(text, start=88))
    assert "ls seeds/ | seedtag -p print" in ans.answer
    cited = ans.citations[0]
    assert (cited.start_line, cited.end_line) == (91, 94)
    # a sentence that does not refer back stays alone
    plain = text.replace("This reads", "Seedtag reads")
    ans = _ask("How can I print a label for each name in my seed folder?", _chunk(plain, start=88))
    assert "seedtag -p" not in ans.answer


def test_a_table_comparing_the_things_the_question_names_is_quoted_whole():
    text = ("## Comparison\n\n| Feature | Brass Kettle | Steel Kettle |\n|---|---|---|\n"
            "| Heat | slow and even | fast |\n| Handle | wooden grip | like a pan |\n"
            "| Lid | hinged lid | loose lid |\n| Use | tea at the table | camping |\n"
            "| Price | dear | cheap |")
    ans = _ask("What is the difference between the brass kettle and the steel kettle?", _chunk(text, start=1))
    whole = [c for c in ans.citations if (c.start_line, c.end_line) == (5, 9)]
    assert whole and "hinged lid" in ans.answer and "Price" in ans.answer
    assert len(ans.citations) == 1
    # not a comparison question: the answering row alone
    ans = _ask("Which handle does the brass kettle have?", _chunk(text, start=1))
    assert all(c.start_line == c.end_line for c in ans.citations)


def _hits(chunks: list[Chunk], scores: list[float]) -> list[Hit]:
    return [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=s, text=c.text) for n, (c, s) in enumerate(zip(chunks, scores), 1)]


def test_the_top_ranked_hit_is_always_quoted_even_when_others_share_more_words():
    # ranked first by meaning, but it shares few words with the question: it still gets the last slot
    top = Chunk(id="a", path="stock.md", title="Stockwaage", heading="Messung > Waage", start_line=72,
                end_line=76, text="Im Log steht, was die Stockwaage gemessen hat:\n```\ngrep STOCK /var/log/waage\n```",
                embed_text="", search_text="")
    others = [Chunk(id=f"b{n}", path=f"imker{n}.md", title="Imker", heading="Imker", start_line=1, end_line=1,
                    text=f"Das Stockbuch zeigt wie ein Stock-Log, ob die Völker gewachsen sind (Variante {n}).",
                    embed_text="", search_text="")
              for n in range(1, 5)]
    chunks = [top] + others
    ans = compose("Wo sehe ich, ob meine Stock-Völker gewachsen sind?", _hits(chunks, [1.0, 0.99, 0.98, 0.97, 0.96]),
                  chunks, {}, True)
    assert "grep STOCK /var/log/waage" in ans.answer
    assert len(ans.citations) == 4
    assert any(c.path == "stock.md" for c in ans.citations)


def test_the_same_passage_copied_into_two_notes_is_quoted_once():
    text = "## Good Habits\n\nLabel seed packets clearly to avoid mixups between neighbouring beds."
    a = Chunk(id="a", path="garden2.md", title="Garden 2", heading="Good Habits", start_line=30,
              end_line=32, text=text, embed_text="", search_text="")
    b = Chunk(id="b", path="all-gardens.md", title="All gardens", heading="Good Habits", start_line=1002,
              end_line=1004, text=text, embed_text="", search_text="")
    ans = compose("How do I label seed packets for neighbouring beds?", _hits([a, b], [1.0, 0.95]), [a, b], {}, True)
    assert len(ans.citations) == 1 and ans.citations[0].path == "garden2.md"
    # nor an item of a list that is already quoted whole from the other copy
    listing = "Uses:\n- Bed planning and rotation checking\n- Pest investigations\n- Harvest queries"
    a = Chunk(id="a", path="plan.md", title="Plan", heading="Plan", start_line=10, end_line=13, text=listing,
              embed_text="", search_text="")
    b = Chunk(id="b", path="all.md", title="All", heading="Plan", start_line=500, end_line=503, text=listing,
              embed_text="", search_text="")
    ans = compose("Which uses: bed planning, pest investigations or harvest queries?",
                  _hits([a, b], [1.0, 0.95]), [a, b], {}, True)
    assert [(c.path, c.start_line, c.end_line) for c in ans.citations] == [("plan.md", 10, 13)]


def test_a_short_code_only_section_is_quoted_whole_even_when_one_line_scores_best():
    text = "### hivectl Setup\n```\nsudo apt install hivectl\nsudo hivectl default lock entrance\nsudo hivectl start\n```"
    code = Chunk(id="c", path="hive.md", title="Hives", heading="Hives > hivectl Setup", start_line=20, end_line=25,
                 text=text, embed_text=text, search_text=text)
    ans = compose("How do I make hivectl lock the entrance by default?", _hits([code], [1.0]), [code], {}, True)
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(22, 24)]
    assert "sudo apt install hivectl" in ans.answer and "sudo hivectl start" in ans.answer


def test_a_top_hit_that_shares_no_word_with_the_question_is_not_forced_in():
    top = _chunk("## Unrelated\n\nThe weather was fine on the trip to the coast.", start=1)
    other = Chunk(id="o", path="hive.md", title="hive scale", heading="hive scale", start_line=5, end_line=5,
                  text="The hive scale writes every weighing to the stock book.", embed_text="", search_text="")
    ans = compose("Where does the hive scale write its weighings?", _hits([top, other], [1.0, 0.9]), [top, other],
                  {}, True)
    assert [c.path for c in ans.citations] == ["hive.md"]


def test_a_line_shared_by_two_overlapping_chunks_of_one_note_is_quoted_once():
    # a long section is cut into windows that repeat their overlap lines; the same line must not be quoted twice
    first = Chunk(id="a", path="quill.md", title="Quill", heading="Commands", start_line=60, end_line=62,
                  text="Commands of quill:\n- /find: search the notes in quill\n- /back: go back to the last quill page",
                  embed_text="", search_text="")
    second = Chunk(id="b", path="quill.md", title="Quill", heading="Commands", start_line=61, end_line=63,
                   text="- /find : search the notes in quill\n- /back: go back to the last quill page\n- /pin: pin pages",
                   embed_text="", search_text="")
    ans = compose("Which command searches the notes in quill?", _hits([first, second], [1.0, 0.98]),
                  [first, second], {}, True)
    spans = [(c.path, c.start_line, c.end_line) for c in ans.citations]
    for i, (p, s, e) in enumerate(spans):
        for q, s2, e2 in spans[i + 1:]:
            assert not (p == q and s <= e2 and s2 <= e), spans
    assert "/find" in ans.answer


def test_an_indented_code_block_is_code_quoted_with_the_line_that_introduces_it():
    text = ("Use `shred` with care. It destroys files for good.\n\nRunning `shred` with a `-n 1` flag makes a "
            "single pass before it overwrites:\n\n    \n    \n    shred -n 1 old.img\n    \n\n"
            "Make a backup before every `shred` command.")
    units = segment(_chunk(text, start=466))
    assert [(u.kind, u.start_line) for u in units if u.kind == "code"] == [("code", 472)]
    ans = _ask("How do I make shred do a single pass with the -n 1 flag?", _chunk(text, start=466))
    cited = [c for c in ans.citations if "shred -n 1 old.img" in c.snippet]
    assert cited and (cited[0].start_line, cited[0].end_line) == (468, 472)
    assert "shred -n 1 old.img" in ans.answer.split("Sources:")[0]


def test_an_indented_line_inside_a_paragraph_or_list_is_not_code():
    para = segment(_chunk("A paragraph that wraps\n    onto an indented line.", start=1))
    assert [u.kind for u in para] == ["sentence"]
    # the middle of a long YAML block cut out of its fence: list markers stay items, as before
    yaml = segment(_chunk("      - name: Water\n        run: drip --slow\n\n      - name: Feed\n        run: pump",
                          start=59))
    assert [(u.kind, u.start_line, u.end_line) for u in yaml] == [("item", 59, 60), ("item", 62, 63)]


def test_a_list_cut_between_two_chunks_of_its_section_is_quoted_whole_when_both_are_hits():
    def piece(text, start):
        return Chunk(id=f"q{start}", path="quill.md", title="Quill", heading="Quill > Advantages over Inkwell",
                     start_line=start, end_line=start + text.count("\n"), text=text, embed_text="", search_text="")

    head = piece("## Advantages over Inkwell\n\nWhat Quill has over Inkwell:\n- Faster search: results while "
                 "typing\n- Tags: every page can have its own\n- Backups: kept for a month", 40)
    tail = piece("- Backups: kept for a month\n- Export: pages as plain text", 45)   # overlaps line 45
    others = [Chunk(id=f"o{n}", path=f"ink{n}.md", title=f"Inkwell {n}", heading="Other", start_line=10, end_line=12,
                    text=f"## Other\n\nInkwell keeps pages in a notebook number {n}.", embed_text="", search_text="")
              for n in range(1, 5)]
    chunks = [tail] + others[:3] + [head] + others[3:]   # the head of the section is hit 5: not read on its own
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.02 * n, text=c.text) for n, c in enumerate(chunks, 1)]
    ans = compose("What advantages does Quill have over Inkwell?", hits, chunks, {"quill": 5.0, "inkwel": 2.0}, True)
    body = ans.answer.split("Sources:")[0]
    assert "Faster search" in body and "Export: pages as plain" in body
    first = next(c for c in ans.citations if c.path == "quill.md")
    assert (first.start_line, first.end_line) == (42, 46)   # the whole list, from its intro to the last item
    # a piece from another section of the same note is not joined on
    other = Chunk(id="x", path="quill.md", title="Quill", heading="Quill > Install", start_line=47, end_line=48,
                  text="- Download: the installer\n- Unpack: into /opt", embed_text="", search_text="")
    chunks2 = [tail, other]
    hits2 = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                 end_line=c.end_line, score=1.0 - 0.02 * n, text=c.text) for n, c in enumerate(chunks2, 1)]
    ans = compose("What advantages does Quill have over Inkwell?", hits2, chunks2, {"quill": 5.0, "inkwel": 2.0},
                  True)
    # (each quote lies inside one section: none runs from the list into the Install section)
    assert all(c.end_line <= 46 or c.start_line >= 47 for c in ans.citations)
    assert not any("Export" in c.snippet and "Download" in c.snippet for c in ans.citations)


def test_a_question_word_matches_the_same_verb_with_re_in_front():
    units = segment(_chunk("- Hives can stand in only one apiary at a time\n- Apiaries are never renamed after "
                           "registration\n- Use a consistent naming scheme", start=50))
    idf = {"hive": 1.5, "apiari": 2.1, "new": 2.7, "name": 2.4, "later": 5.3, "give": 5.7}
    one, renamed, naming = score_units("Can I give a hive apiary a new name later on?", units, idf)
    assert renamed > one and renamed > naming   # "name" is "renamed" again
    units = segment(_chunk("- Resoil: potter resoil fern --mix peat\n- Restock: from the nursery", start=1))
    resoil, restock = score_units("Can I change the soil of a fern?", units, {"soil": 4.0, "fern": 2.5, "chang": 3.0})
    assert resoil > 0.5 and restock == 0   # "soil" is "resoil" again; "restock" is not "stock" asked


def test_a_note_with_only_frontmatter_is_not_quoted_as_an_answer():
    # an `_index.md` with a title and menu settings: found by its title, but its YAML answers nothing
    yaml = Chunk(id="y", path="garden/_index.md", title="Garden Tools", heading="", start_line=1, end_line=5,
                 text="---\ntitle: Garden Tools\nmenu:\n  main:\n---", embed_text="Garden Tools", search_text="")
    body = Chunk(id="b", path="garden/pruning.md", title="Pruning", heading="Fruit trees", start_line=20,
                 end_line=21, text="For the fruit trees in my orchard I use bypass shears.",
                 embed_text="", search_text="")
    ans = compose("Which tool prunes the fruit trees in my orchard?", _hits([yaml, body], [1.0, 0.9]),
                  [yaml, body], {}, True)
    assert [c.path for c in ans.citations] == ["garden/pruning.md"]
    assert "menu" not in ans.answer
    # nothing but such a note: nothing to quote
    alone = compose("Which tool prunes the fruit trees in my orchard?", _hits([yaml], [1.0]), [yaml], {}, True)
    assert not alone.found


def test_a_diagram_styling_line_is_never_quoted():
    # "style PO fill:#ff0,stroke:#111" would be quoted as "PO fill:ff0,stroke:#111,stroke-width:2px"
    text = ("### Pollinators\n```mermaid\nmindmap\n  root((Garden))\n    Pollinators\n"
            "    style PO fill:#ff0,stroke:#111,stroke-width:2px\n    classDef tall fill:#aaa,stroke:#222\n"
            "    class BEE tall\n    linkStyle 0 stroke:#0f0\n```")
    units = segment(_chunk(text))
    assert not any(w in u.display for u in units for w in ("fill", "stroke", "tall"))


def test_a_line_of_nested_code_is_quoted_with_its_parent_and_siblings():
    # the answer sits on the line below the one that shares the question's words
    ps = ("```powershell\n$bedspec = @{\n    Name = 'HerbBed'\n    Width = '120cm'\n}\n"
          "$garden = New-GardenBed @spec\n```")
    ans = _ask("Which Width has the HerbBed?", _chunk(ps, start=20))
    assert [(c.start_line, c.end_line) for c in ans.citations][:1] == [(21, 24)]
    # each quoted line below the first is shown two spaces in, under its bullet, keeping its own indent
    assert "$bedspec = @{\n      Name = 'HerbBed'\n      Width = '120cm'\n  }" in ans.answer
    yaml = ("```yaml\nsteps:\n  - name: Fetch seeds\n    uses: garden/fetch@v3\n\n  - name: Water beds\n"
            "    run: drip --slow\n```")
    ans = _ask("Which command does the water beds step run?", _chunk(yaml, start=5))
    assert "- - name: Water beds\n    run: drip --slow [1]" in ans.answer   # nesting shown as in the note
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(10, 11)]


def test_an_intro_and_the_command_below_it_chosen_apart_are_quoted_as_one():
    # the command outscores the intro + command snippet, so both were quoted as two bullets, the intro dangling
    text = ('### Speicher\nZeig mir alle Ordner die "Wachsen":\n```du -sh * | sort -h```\n\n'
            "### Backup\nThe backup is a tarball.")
    ans = _ask("Which du one-liner sorts -sh for all Ordner on a Disk?", _chunk(text, start=34))
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(35, 36)]
    assert 'Zeig mir alle Ordner die "Wachsen":\n  du -sh * | sort -h [1]' in ans.answer
    assert ans.citations[0].snippet == \
        'Zeig mir alle Ordner die "Wachsen":\n```du -sh * | sort -h```'


def test_an_intro_with_nothing_below_it_in_its_section_counts_half():
    # "Some practical uses of Quill I tried:" ends its section (its list is in the next one): it shares
    # every word with the question, but alone it answers nothing, so the sentence that does is quoted too
    intro = _chunk("## Quill\n\nQuill turns a photo of a page into a note with one command.\n\n"
                   "Some practical uses of Quill I tried:", start=80)
    ans = _ask("Which practical uses of Quill have I tried?", intro)
    assert [c.start_line for c in ans.citations] == [82, 84]
    # the same line with its list right below it is the answer, whole
    listed = _chunk("## Quill\n\nQuill turns a photo of a page into a note with one command.\n\n"
                    "Some practical uses of Quill I tried:\n- scan a recipe card\n"
                    "- file a receipt", start=80)
    ans = _ask("Which practical uses of Quill have I tried?", listed)
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(84, 86)]


def test_the_lines_of_an_ascii_art_diagram_are_not_quoted():
    text = ("## Greenhouse vents\n\nThe north vent stays shut while the south vent opens in the heat.\n\n```\n"
            "+---------------------+        +---------------------+\n"
            "|  |  | (Open)         |   |    |  |  | (Shut)         |\n"
            "+---------------------+        +---------------------+\n```")
    ans = _ask("Which vent is shut, and which is open?", _chunk(text, start=1))
    assert [c.start_line for c in ans.citations] == [3]
    # a table row with its cells filled is not a drawing
    table = "| Vent | State |\n|---|---|\n| South | open |\n| North | shut, latched |"
    ans = _ask("Which vent is shut?", _chunk(table, start=1))
    assert ans.citations and "North" in ans.answer


def test_a_chunk_that_starts_inside_an_indented_code_block_reads_it_as_code_when_the_note_says_so():
    # the window starts on the output of a version command (4-space indented): without the note's line
    # above, its lines ran together as one sentence
    text = '    NAME="Gartl"\n    VERSION="3.1.4 (Green Bean)"\n    ID=gartl\n\nThat is the version.'
    chunk = _chunk(text, start=354)
    assert [u.kind for u in segment(chunk)][:1] == ["sentence"]          # guessed from the chunk alone
    units = segment(chunk, None, True)
    assert [u.kind for u in units] == ["code", "code", "code", "sentence"]
    assert [u.start_line for u in units] == [354, 355, 356, 358]


def test_an_embedded_image_scores_nothing_even_when_its_name_matches_the_question():
    # with few good candidates, a 0.2 share of a matching image name still made the answer's quotes
    units = segment(_chunk("![[Pasted image sketches 20190101090909.png]]\n\nGood sketches make clear what is meant.",
                           start=1, heading="2 Sketches"))
    scores = score_units("Which pasted image shows the sketches?", units, {}, "Notes 2 Sketches")
    assert scores[0] == 0.0 and scores[1] > 0
