"""The extractive answer: the answering sentence over the first one, lists and table rows kept whole."""
import pytest

from azchat.answer import compose, score_units, segment
from azchat.types import Chunk, Hit


def _chunk(text: str, start: int = 10, title: str = "Note", heading: str = "Note") -> Chunk:
    return Chunk(id="c", path="note.md", title=title, heading=heading, start_line=start,
                 end_line=start + text.count("\n"), text=text, embed_text=text, search_text=text)


def _ask(question: str, chunk: Chunk):
    hit = Hit(rank=1, path=chunk.path, title=chunk.title, heading=chunk.heading, start_line=chunk.start_line,
              end_line=chunk.end_line, score=1.0, text=chunk.text)
    return compose(question, [hit], [chunk], {}, True)


def test_the_answering_sentence_is_chosen_over_the_first():
    text = ("## Cloud Shell\n\nCloud Shell is a browser-based terminal for managing Azure. It comes with the Azure CLI "
            "and PowerShell preinstalled. Sessions end after a 20-minute inactivity timeout. Files persist in an "
            "Azure file share.")
    ans = _ask("How long can the Cloud Shell session stay inactive before it times out?", _chunk(text))
    assert ans.found
    first = ans.citations[0]
    assert "20-minute inactivity timeout" in first.snippet
    assert "browser-based terminal" not in ans.answer       # the first sentence does not answer: not quoted
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(12, 12)]
    assert all("preinstalled" not in c.snippet for c in ans.citations)


def test_a_list_under_a_matching_intro_is_quoted_whole():
    text = ("To deploy infrastructure with Terraform run these commands in order:\n"
            "- terraform init\n- terraform plan\n- terraform apply\n\nSomething else entirely about providers.")
    ans = _ask("Which commands deploy infrastructure with Terraform in order?", _chunk(text, start=5))
    c = ans.citations[0]
    assert (c.start_line, c.end_line) == (5, 8)
    assert "- terraform init\n- terraform plan\n- terraform apply" in c.snippet
    body = ans.answer.split("Sources:")[0]
    assert "terraform init" in body and "terraform apply" in body
    assert len([x for x in ans.citations if x.start_line <= 6 <= x.end_line]) == 1   # items not quoted twice


def test_table_rows_are_kept_whole_with_their_header():
    text = ("| Tier | Latency | Cost |\n|---|---|---|\n| Hot | milliseconds | high storage cost |\n"
            "| Archive | hours, needs rehydration | lowest storage cost |")
    units = segment(_chunk(text, start=3))
    rows = [u for u in units if u.kind == "row"]
    assert [u.start_line for u in rows] == [5, 6]      # the header row is shown in each row instead
    assert rows[1].text == "| Archive | hours, needs rehydration | lowest storage cost |"
    assert rows[1].display == "Tier: Archive; Latency: hours, needs rehydration; Cost: lowest storage cost"
    ans = _ask("What is the latency of the archive tier?", _chunk(text, start=3))
    assert [c.start_line for c in ans.citations] == [6]
    assert "Archive" in ans.answer and "hours" in ans.answer


def test_heading_words_help_pick_the_sentence_under_them():
    text = "## terraform fmt\n\nRewrites configuration files to a canonical format and style."
    ans = _ask("What does terraform fmt do?", _chunk(text, title="Working with Terraform",
                                                     heading="Working with Terraform > terraform fmt"))
    assert ans.found and "canonical format" in ans.citations[0].snippet


def test_the_code_under_an_intro_line_is_quoted_with_it():
    text = "Jobs pausieren und fortsetzen.\n\nJob fortsetzen:\n\n```bash\njobber resume DailyBackup\n```\n"
    ans = _ask("Wie kann ich einen Job fortsetzen?", _chunk(text, start=90))
    c = next(c for c in ans.citations if "jobber" in c.snippet)
    assert (c.start_line, c.end_line) == (92, 95)
    assert "jobber resume DailyBackup" in c.snippet and c.snippet.startswith("Job fortsetzen:")
    assert "jobber resume DailyBackup" in ans.answer


def test_merged_snippets_are_exact_spans_of_the_chunk():
    from azchat.answer import _with_blocks, score_units

    text = "Run these commands:\n\n- terraform init\n- terraform plan\n\n`terraform apply` applies."
    chunk = _chunk(text, start=1)
    units = segment(chunk)
    for unit, _ in _with_blocks(units, score_units("terraform commands", units, {}), chunk):
        assert unit.text in text


def test_link_lists_and_image_names_are_not_quoted_as_answers():
    text = ("Citations: [1] https://zed.dev/blog/zed-ai [2] https://zed.dev/blog/editor\n\n"
            "Zed AI differs from Cursor by its assistant panel and slash commands.\n\n"
            "![[Pasted image 20230515110654.png]]")
    ans = _ask("How does Zed AI differ from Cursor?", _chunk(text, start=1, title="Zed AI"))
    assert [c.start_line for c in ans.citations] == [3]
    # Obsidian names pasted images "Pasted image 2023....png", often under a folder: the name matches the
    # note's words ("terraform") but shows nothing
    text = ("## Basics\n\nterraform init downloads the providers before the first plan.\n\n"
            "![[_special notes/docs/IaC/Terraform/Pasted image terraform init plan.png]]\n\n"
            "![terraform init plan output](assets/terraform init plan.png)")
    ans = _ask("What does terraform init do before terraform plan?", _chunk(text, start=1, title="Terraform"))
    assert [c.start_line for c in ans.citations] == [3]


def test_a_sentence_right_above_an_inline_command_is_quoted_with_it():
    text = ("## Publishing\n\nI now use this to add only files smaller than 100MB to the repository.\n\n"
            "`find * -size -100M -type f -print0 | xargs -0 git add`\n\nSomething else entirely.")
    ans = _ask("add only files smaller than 100MB to the repository", _chunk(text, start=1))
    assert "-size -100M" in ans.answer
    c = ans.citations[0]
    assert (c.start_line, c.end_line) == (3, 5) and c.snippet.endswith("git add`")


def test_a_trailing_comment_brings_the_command_above_it():
    text = "## Docker\n\n```shell\ndocker system prune\n# Remove all unused containers, networks and images\n```"
    ans = _ask("remove unused containers networks images", _chunk(text, start=40))
    assert "docker system prune" in ans.answer
    assert (ans.citations[0].start_line, ans.citations[0].end_line) == (43, 44)


def test_indented_sub_items_are_quoted_with_their_line():
    text = ("## Commands\n\nterraform validate - checks the configuration\nterraform fmt - formats\n"
            "\t- formats code in canonical format\n\t- also with -recursive\nterraform show")
    ans = _ask("What does terraform fmt do?", _chunk(text, start=1))
    assert "canonical format" in ans.answer
    cited = [c for c in ans.citations if "canonical" in c.snippet]
    assert cited and cited[0].end_line == 6


def test_a_comment_between_commands_reads_with_the_command_above_and_below():
    text = "## Env\n\n```\n$EDITOR ~/.zprofile\n# add lines at the bottom of the file:\nexport A=1\n```"
    ans = _ask("add an export line to the file", _chunk(text, start=1))
    assert "~/.zprofile" in ans.answer and "export A=1" in ans.answer
    assert (ans.citations[0].start_line, ans.citations[0].end_line) == (4, 6)


def test_a_one_line_triple_backtick_span_is_code_not_an_open_fence():
    text = "## Network\n\nShow every service listening on a port:\n```netstat -tulpn | grep LISTEN```\n\n### Users\n" \
           "Add a user to the docker group."
    units = segment(_chunk(text, start=1))
    assert [(u.kind, u.display) for u in units if u.kind == "code"] == [("code", "netstat -tulpn | grep LISTEN")]
    assert any(u.display == "Add a user to the docker group." and u.kind == "sentence" for u in units)
    ans = _ask("show services listening on a port", _chunk(text, start=1))
    assert "netstat -tulpn" in ans.answer and "docker group" not in ans.answer


def test_a_section_that_is_only_code_is_introduced_by_its_own_heading():
    text = "#### check which ports services listen on:\n```shell\nss -nptl\n```"
    code = Chunk(id="c", path="fw.md", title="Firewall", heading="Firewall > check which ports services listen on:",
                 start_line=37, end_line=40, text=text, embed_text=text, search_text=text)
    other = _chunk("## Ports\n\nBy default the firewall closes the ports that no listening services need.", start=50)
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.1 * n, text=c.text) for n, c in enumerate([code, other], 1)]
    ans = compose("which services listen on which ports", hits, [code, other], {}, True)
    assert "ss -nptl" in ans.answer
    cited = [c for c in ans.citations if "ss -nptl" in c.snippet]
    assert (cited[0].path, cited[0].start_line, cited[0].end_line) == ("fw.md", 39, 39)


def test_a_command_continued_over_lines_is_one_unit_with_its_exact_span():
    text = ("## Peer\n\n```bash\naz network vnet peering create --name a-to-b \\\n  --vnet-name vnet-a \\\n"
            "  --remote-vnet $bId\n\naz network vnet peering list -o table\n```")
    units = [u for u in segment(_chunk(text, start=20)) if u.kind == "code"]
    assert [(u.start_line, u.end_line) for u in units] == [(23, 25), (27, 27)]
    assert units[0].text == "az network vnet peering create --name a-to-b \\\n  --vnet-name vnet-a \\\n  --remote-vnet $bId"
    assert units[0].text in text                       # still the exact text of those lines
    assert units[0].display == "az network vnet peering create --name a-to-b --vnet-name vnet-a --remote-vnet $bId"


def test_a_chunk_that_starts_inside_a_code_block_reads_its_lines_as_code():
    text = "  --allow-forwarded-traffic\n\naz network vnet peering list -o table\n```\n\nThe link shows Connected."
    units = segment(_chunk(text, start=65))
    kinds = {u.display: u.kind for u in units}
    assert kinds["az network vnet peering list -o table"] == "code"
    assert kinds["The link shows Connected."] == "sentence"
    # a chunk whose first fence opens a block is read normally
    opened = segment(_chunk("Run this:\n```bash\nls -la\n```", start=1))
    assert [(u.kind, u.display) for u in opened] == [("sentence", "Run this:"), ("code", "ls -la")]


def test_question_words_match_unit_words_up_to_an_inflection_ending():
    from azchat.answer import Unit, _near_matches, score_units
    # the stemmer is English: German 'kopiere' -> kopier, 'kopieren' stays; the answer scorer still pairs them
    assert _near_matches({"kopier"}, {"kopieren"}) == {"kopier"}
    assert _near_matches({"unterstutzt"}, {"unterstutzen", "blog"}) == {"unterstutzt"}
    assert _near_matches({"server"}, {"serverless"}) == set()     # more than an ending apart
    assert _near_matches({"config"}, {"confirm"}) == set()
    units = [Unit(t, t, n, n, "sentence") for n, t in enumerate(
        ["Einen Ordner kopieren geht mit scp -r.", "Einen Ordner löschen geht mit rm -rf."], start=1)]
    scores = score_units("Wie kopiere ich einen Ordner?", units, {})
    assert scores[0] > scores[1]


def test_a_code_section_is_found_through_an_inflected_heading_word():
    text = "### Ordner kopieren\n```\nscp -r /home root@192.168.1.2:/home\n```"
    code = Chunk(id="c", path="scp.md", title="scp", heading="scp > Ordner kopieren", start_line=42,
                 end_line=45, text=text, embed_text=text, search_text=text)
    other = _chunk("## Dateien\n\nEinen Ordner auf dem Server löschen:\n```\nrm -rf dir\n```", start=1)
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.1 * n, text=c.text) for n, c in enumerate([code, other], 1)]
    ans = compose("Wie kopiere ich einen Ordner auf einen anderen Server?", hits, [code, other], {}, True)
    assert "scp -r" in ans.answer


def test_a_loose_list_of_single_items_is_one_list_but_separate_groups_stay_apart():
    from azchat.answer import blocks
    loose = _chunk("### Bootstrap Theme\n- Blog, Docs, Serien, Portfolio\n\n- https://github.com/x/hugo-theme-bootstrap\n",
                   start=24)
    ans = _ask("Welches Theme unterstützt Blog, Docs, Serien und Portfolio?", loose)
    assert "hugo-theme-bootstrap" in ans.answer
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(25, 27)]
    groups = _chunk("- a one\n- a two\n\n- b one\n- b two\n\n- c", start=1)
    assert blocks(segment(groups), chunk=groups) == [(0, 1), (2, 3)]
    heading_between = _chunk("- a one\n## Other\n- b one", start=1)
    assert blocks(segment(heading_between), chunk=heading_between) == []


def test_a_sentence_that_refers_back_to_the_code_above_is_quoted_with_it():
    text = ("### Content Summarization\n\n```bash\npbpaste | fabric -p sum\n```\n\n"
            "This command takes the content in your clipboard and writes a short summary of it.")
    ans = _ask("How can I get a short summary of what is in my clipboard?", _chunk(text, start=88))
    assert "pbpaste | fabric -p sum" in ans.answer
    cited = ans.citations[0]
    assert (cited.start_line, cited.end_line) == (91, 94)
    # a sentence that does not refer back stays alone
    plain = text.replace("This command takes", "Fabric takes")
    ans = _ask("How can I get a short summary of what is in my clipboard?", _chunk(plain, start=88))
    assert "pbpaste" not in ans.answer


def test_a_table_comparing_the_things_the_question_names_is_quoted_whole():
    text = ("## Comparison\n\n| Feature | Zed Editor | Cursor Editor |\n|---|---|---|\n"
            "| AI | LLMs for text editing | assistant for code |\n| Interface | assistant panel | like VS Code |\n"
            "| Context | slash commands | docs and web links |\n| Audience | fast editing | full IDE |\n"
            "| Price | free | paid |")
    ans = _ask("What is the difference between the Zed editor and the Cursor editor?", _chunk(text, start=1))
    whole = [c for c in ans.citations if (c.start_line, c.end_line) == (5, 9)]
    assert whole and "slash commands" in ans.answer and "Price" in ans.answer
    assert len(ans.citations) == 1
    # not a comparison question: the answering row alone
    ans = _ask("Which interface does the Zed editor have?", _chunk(text, start=1))
    assert all(c.start_line == c.end_line for c in ans.citations)


def _hits(chunks: list[Chunk], scores: list[float]) -> list[Hit]:
    return [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=s, text=c.text) for n, (c, s) in enumerate(zip(chunks, scores), 1)]


def test_the_top_ranked_hit_is_always_quoted_even_when_others_share_more_words():
    # ranked first by meaning, but it shares few words with the question: it still gets the last slot
    top = Chunk(id="a", path="cron.md", title="crontab", heading="Monitoring > cron log", start_line=72,
                end_line=76, text="Im Syslog steht, was cron ausgeführt hat:\n```\ngrep CRON /var/log/syslog\n```",
                embed_text="", search_text="")
    others = [Chunk(id=f"b{n}", path=f"jobber{n}.md", title="Jobber", heading="Jobber", start_line=1, end_line=1,
                    text=f"Jobber plant Aufgaben wie Cron und zeigt, ob die Aufgaben gelaufen sind (Variante {n}).",
                    embed_text="", search_text="")
              for n in range(1, 5)]
    chunks = [top] + others
    ans = compose("Wo sehe ich, ob meine Cron-Aufgaben gelaufen sind?", _hits(chunks, [1.0, 0.99, 0.98, 0.97, 0.96]),
                  chunks, {}, True)
    assert "grep CRON /var/log/syslog" in ans.answer
    assert len(ans.citations) == 4
    assert any(c.path == "cron.md" for c in ans.citations)


def test_the_same_passage_copied_into_two_notes_is_quoted_once():
    text = "## Best Practices\n\nPlan address spaces carefully to avoid overlaps between peered networks."
    a = Chunk(id="a", path="module6.md", title="Module 6", heading="Best Practices", start_line=30,
              end_line=32, text=text, embed_text="", search_text="")
    b = Chunk(id="b", path="all-modules.md", title="All modules", heading="Best Practices", start_line=1002,
              end_line=1004, text=text, embed_text="", search_text="")
    ans = compose("How do I plan address spaces for peered networks?", _hits([a, b], [1.0, 0.95]), [a, b], {}, True)
    assert len(ans.citations) == 1 and ans.citations[0].path == "module6.md"
    # nor an item of a list that is already quoted whole from the other copy
    listing = "Use cases:\n- Resource inventory and compliance checking\n- Security investigations\n- Cost queries"
    a = Chunk(id="a", path="graph.md", title="Graph", heading="Graph", start_line=10, end_line=13, text=listing,
              embed_text="", search_text="")
    b = Chunk(id="b", path="all.md", title="All", heading="Graph", start_line=500, end_line=503, text=listing,
              embed_text="", search_text="")
    ans = compose("Which use cases: resource inventory, security investigations or cost queries?",
                  _hits([a, b], [1.0, 0.95]), [a, b], {}, True)
    assert [(c.path, c.start_line, c.end_line) for c in ans.citations] == [("graph.md", 10, 13)]


def test_a_short_code_only_section_is_quoted_whole_even_when_one_line_scores_best():
    text = "### ufw Firewall\n```\nsudo apt install ufw\nsudo ufw default deny incoming\nsudo ufw enable\n```"
    code = Chunk(id="c", path="ufw.md", title="Linux", heading="Linux > ufw Firewall", start_line=20, end_line=25,
                 text=text, embed_text=text, search_text=text)
    ans = compose("How do I make ufw deny incoming connections by default?", _hits([code], [1.0]), [code], {}, True)
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(22, 24)]
    assert "sudo apt install ufw" in ans.answer and "sudo ufw enable" in ans.answer


def test_a_top_hit_that_shares_no_word_with_the_question_is_not_forced_in():
    top = _chunk("## Unrelated\n\nThe weather was fine on the trip to the coast.", start=1)
    other = Chunk(id="o", path="cron.md", title="cron", heading="cron", start_line=5, end_line=5,
                  text="Cron logs every job it ran to the syslog.", embed_text="", search_text="")
    ans = compose("Where does cron log the jobs it ran?", _hits([top, other], [1.0, 0.9]), [top, other], {}, True)
    assert [c.path for c in ans.citations] == ["cron.md"]


def test_a_line_shared_by_two_overlapping_chunks_of_one_note_is_quoted_once():
    # a long section is cut into windows that repeat their overlap lines; the same line must not be quoted twice
    first = Chunk(id="a", path="aider.md", title="Aider", heading="Commands", start_line=60, end_line=62,
                  text="Commands of aider:\n- /help: ask questions about aider\n- /undo: undo the last aider commit",
                  embed_text="", search_text="")
    second = Chunk(id="b", path="aider.md", title="Aider", heading="Commands", start_line=61, end_line=63,
                   text="- /help : ask questions about aider\n- /undo: undo the last aider commit\n- /add: add files",
                   embed_text="", search_text="")
    ans = compose("Which command asks questions about aider?", _hits([first, second], [1.0, 0.98]),
                  [first, second], {}, True)
    spans = [(c.path, c.start_line, c.end_line) for c in ans.citations]
    for i, (p, s, e) in enumerate(spans):
        for q, s2, e2 in spans[i + 1:]:
            assert not (p == q and s <= e2 and s2 <= e), spans
    assert "/help" in ans.answer


def test_an_indented_code_block_is_code_quoted_with_the_line_that_introduces_it():
    text = ("Be wary of `rm`. It's a dangerous command.\n\nRunning `rm` with a `-i` flag lets you think before you "
            "delete:\n\n    \n    \n    rm -i *\n    \n\nMake it a habit to include `-i` in every `rm` command.")
    units = segment(_chunk(text, start=466))
    assert [(u.kind, u.start_line) for u in units if u.kind == "code"] == [("code", 472)]
    ans = _ask("How do I get asked before rm deletes with the -i flag?", _chunk(text, start=466))
    cited = [c for c in ans.citations if "rm -i *" in c.snippet]
    assert cited and (cited[0].start_line, cited[0].end_line) == (468, 472)
    assert "rm -i *" in ans.answer.split("Sources:")[0]


def test_an_indented_line_inside_a_paragraph_or_list_is_not_code():
    para = segment(_chunk("A paragraph that wraps\n    onto an indented line.", start=1))
    assert [u.kind for u in para] == ["sentence"]
    # the middle of a long YAML block cut out of its fence: list markers stay items, as before
    yaml = segment(_chunk("      - name: Build\n        run: hugo --minify\n\n      - name: Deploy\n        run: rsync",
                          start=59))
    assert [(u.kind, u.start_line, u.end_line) for u in yaml] == [("item", 59, 60), ("item", 62, 63)]








def test_a_list_cut_between_two_chunks_of_its_section_is_quoted_whole_when_both_are_hits():
    def piece(text, start):
        return Chunk(id=f"j{start}", path="jobber.md", title="Jobber", heading="Jobber > Advantages over cron",
                     start_line=start, end_line=start + text.count("\n"), text=text, embed_text="", search_text="")

    head = piece("## Advantages over cron\n\nWhat Jobber has over cron:\n- Better error handling: failed jobs are "
                 "retried\n- Time zones: every job can have its own\n- Security: runs as the user", 40)
    tail = piece("- Security: runs as the user\n- Logging: detailed logs of every run", 45)   # overlaps line 45
    others = [Chunk(id=f"o{n}", path=f"cron{n}.md", title=f"Cron {n}", heading="Other", start_line=10, end_line=12,
                    text=f"## Other\n\nCron runs jobs on a schedule number {n}.", embed_text="", search_text="")
              for n in range(1, 5)]
    chunks = [tail] + others[:3] + [head] + others[3:]   # the head of the section is hit 5: not read on its own
    hits = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                end_line=c.end_line, score=1.0 - 0.02 * n, text=c.text) for n, c in enumerate(chunks, 1)]
    ans = compose("What advantages does Jobber have over cron?", hits, chunks, {"jobber": 5.0, "cron": 2.0}, True)
    body = ans.answer.split("Sources:")[0]
    assert "Better error handling" in body and "Logging: detailed logs" in body
    first = next(c for c in ans.citations if c.path == "jobber.md")
    assert (first.start_line, first.end_line) == (42, 46)   # the whole list, from its intro to the last item
    # a piece from another section of the same note is not joined on
    other = Chunk(id="x", path="jobber.md", title="Jobber", heading="Jobber > Install", start_line=47, end_line=48,
                  text="- Download: the release archive\n- Unpack: into /usr/local", embed_text="", search_text="")
    chunks2 = [tail, other]
    hits2 = [Hit(rank=n, path=c.path, title=c.title, heading=c.heading, start_line=c.start_line,
                 end_line=c.end_line, score=1.0 - 0.02 * n, text=c.text) for n, c in enumerate(chunks2, 1)]
    ans = compose("What advantages does Jobber have over cron?", hits2, chunks2, {"jobber": 5.0, "cron": 2.0}, True)
    # (each quote lies inside one section: none runs from the list into the Install section)
    assert all(c.end_line <= 46 or c.start_line >= 47 for c in ans.citations)
    assert not any("Logging" in c.snippet and "Download" in c.snippet for c in ans.citations)






def test_a_question_word_matches_the_same_verb_with_re_in_front():
    units = segment(_chunk("- Resources can exist in only one group at a time\n- Groups can't be renamed after creation\n"
                           "- Use consistent naming convention", start=50))
    idf = {"resourc": 1.5, "group": 2.1, "new": 2.7, "name": 2.4, "later": 5.3, "give": 5.7}
    one, renamed, naming = score_units("Can I give a resource group a new name later on?", units, idf)
    assert renamed > one and renamed > naming   # "name" is "renamed" again
    units = segment(_chunk("- Resize: az vm resize --size Standard_DS3_v2\n- Restore: from a recovery point", start=1))
    resize, restore = score_units("Can I change the size of a VM?", units, {"size": 4.0, "vm": 2.5, "chang": 3.0})
    assert resize > 0.5 and restore == 0   # "size" is "resize" again; "restore" is not "store" asked


def test_a_note_with_only_frontmatter_is_not_quoted_as_an_answer():
    # an `_index.md` with a title and menu settings: found by its title, but its YAML answers nothing
    yaml = Chunk(id="y", path="docs/_index.md", title="Doku Tools", heading="", start_line=1, end_line=5,
                 text="---\ntitle: Doku Tools\nmenu:\n  main:\n---", embed_text="Doku Tools", search_text="")
    body = Chunk(id="b", path="docs/prompts.md", title="Prompts", heading="Technical drawings", start_line=20,
                 end_line=21, text="For technical drawings from my docs I use Claude.",
                 embed_text="", search_text="")
    ans = compose("Which tool draws technical drawings from my docs?", _hits([yaml, body], [1.0, 0.9]),
                  [yaml, body], {}, True)
    assert [c.path for c in ans.citations] == ["docs/prompts.md"]
    assert "menu" not in ans.answer
    # nothing but such a note: nothing to quote
    alone = compose("Which tool draws technical drawings from my docs?", _hits([yaml], [1.0]), [yaml], {}, True)
    assert not alone.found


def test_a_diagram_styling_line_is_never_quoted():
    # "style EI fill:#f9f,stroke:#333" was quoted as "EI fill:f9f,stroke:#333,stroke-width:4px"
    text = ("### External Identities\n```mermaid\nmindmap\n  root((Identities))\n    External Identities\n"
            "    style EI fill:#f9f,stroke:#333,stroke-width:4px\n    classDef big fill:#ccc,stroke:#000\n"
            "    class B2B big\n    linkStyle 0 stroke:#f00\n```")
    units = segment(_chunk(text))
    assert not any(w in u.display for u in units for w in ("fill", "stroke", "big"))


def test_a_line_of_nested_code_is_quoted_with_its_parent_and_siblings():
    # the answer sits on the line below the one that shares the question's words
    ps = ("```powershell\n$bastsubnet = @{\n    Name = 'AzureBastionSubnet'\n    AddressPrefix = '10.1.1.0/26'\n}\n"
          "$vnet = New-AzVirtualNetwork @net\n```")
    ans = _ask("Which AddressPrefix has the AzureBastionSubnet?", _chunk(ps, start=20))
    assert [(c.start_line, c.end_line) for c in ans.citations][:1] == [(21, 24)]
    # each quoted line below the first is shown two spaces in, under its bullet, keeping its own indent
    assert "$bastsubnet = @{\n      Name = 'AzureBastionSubnet'\n      AddressPrefix = '10.1.1.0/26'\n  }" in ans.answer
    yaml = ("```yaml\nsteps:\n  - name: Checkout\n    uses: actions/checkout@v2\n\n  - name: Build site\n"
            "    run: hugo --minify\n```")
    ans = _ask("Which command does the build site step run?", _chunk(yaml, start=5))
    assert "- - name: Build site\n    run: hugo --minify [1]" in ans.answer   # nesting shown as in the note
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(10, 11)]


def test_an_intro_and_the_command_below_it_chosen_apart_are_quoted_as_one():
    # the command outscores the intro + command snippet, so both were quoted as two bullets, the intro dangling
    text = ('### Network\nGib mir alle Dienste die an einem Port "Lauschen":\n```netstat -tulpn | grep LISTEN```\n\n'
            "### Firewall\nThe firewall is ufw.")
    ans = _ask("Which netstat one-liner greps LISTEN for all Dienste on a Port?", _chunk(text, start=34))
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(35, 36)]
    assert 'Gib mir alle Dienste die an einem Port "Lauschen":\n  netstat -tulpn | grep LISTEN [1]' in ans.answer
    assert ans.citations[0].snippet == \
        'Gib mir alle Dienste die an einem Port "Lauschen":\n```netstat -tulpn | grep LISTEN```'


def test_an_intro_with_nothing_below_it_in_its_section_counts_half():
    # "Let's explore some practical applications of Fabric:" ends its section (its list is in the next one): it
    # shares every word with the question, but alone it answers nothing, so the sentence that does is quoted too
    intro = _chunk("## Fabric\n\nFabric turns the clipboard into a summary with one command.\n\n"
                   "Let's explore some practical applications of Fabric:", start=80)
    ans = _ask("Which practical applications of Fabric did I explore?", intro)
    assert [c.start_line for c in ans.citations] == [82, 84]
    # the same line with its list right below it is the answer, whole
    listed = _chunk("## Fabric\n\nFabric turns the clipboard into a summary with one command.\n\n"
                    "Let's explore some practical applications of Fabric:\n- summarize the clipboard\n"
                    "- extract wisdom from a video", start=80)
    ans = _ask("Which practical applications of Fabric did I explore?", listed)
    assert [(c.start_line, c.end_line) for c in ans.citations] == [(84, 86)]


def test_the_lines_of_an_ascii_art_diagram_are_not_quoted():
    text = ("## Storage replication\n\nGeo-redundant storage keeps a read-only copy in the paired region.\n\n```\n"
            "+---------------------+        +---------------------+\n"
            "|  |  | (Read/Write)   |   |    |  |  | (Read-only)    |\n"
            "+---------------------+        +---------------------+\n```")
    ans = _ask("Which region copy is read-only, and which is read/write?", _chunk(text, start=1))
    assert [c.start_line for c in ans.citations] == [3]
    # a table row with its cells filled is not a drawing
    table = "| Tier | Access |\n|---|---|\n| Hot | read/write |\n| Archive | read-only, offline |"
    ans = _ask("Which tier is read-only?", _chunk(table, start=1))
    assert ans.citations and "Archive" in ans.answer


def test_a_chunk_that_starts_inside_an_indented_code_block_reads_it_as_code_when_the_note_says_so():
    # the window starts on the output of `cat /etc/os-release` (4-space indented): without the note's line
    # above, its lines ran together as one sentence
    text = '    NAME="Ubuntu"\n    VERSION="18.04.2 LTS (Bionic Beaver)"\n    ID=ubuntu\n\nThat is the distribution.'
    chunk = _chunk(text, start=354)
    assert [u.kind for u in segment(chunk)][:1] == ["sentence"]          # guessed from the chunk alone
    units = segment(chunk, None, True)
    assert [u.kind for u in units] == ["code", "code", "code", "sentence"]
    assert [u.start_line for u in units] == [354, 355, 356, 358]


def test_an_embedded_image_scores_nothing_even_when_its_name_matches_the_question():
    # with few good candidates, a 0.2 share of a matching image name still made the answer's quotes
    units = segment(_chunk("![[Pasted image examples 20230508161103.png]]\n\nGood examples make clear what is wanted.",
                           start=1, heading="4 Examples"))
    scores = score_units("Which pasted image shows the examples?", units, {}, "Notes 4 Examples")
    assert scores[0] == 0.0 and scores[1] > 0
