"""Links that open a cited note where the user edits it.

An Obsidian vault (the notes folder, or a folder above it, has `.obsidian/`) gets
`obsidian://open?vault=NAME&file=PATH` (Obsidian has no line parameter). Otherwise the template in
AZCHAT_EDITOR_URL is filled in, default `vscode://file/{path}:{line}`. Placeholders: `{path}` the note's
absolute path, `{rel}` its path inside the notes folder, `{line}` the 1-based line. Values are URL-encoded
(keeping `/` and `:`); a template must name `{path}` or `{rel}` and may not use a script or data scheme.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..errors import AzchatError

DEFAULT_TEMPLATE = "vscode://file/{path}:{line}"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_REFUSED = {"javascript", "data", "vbscript", "file", "blob", "about"}


def check_template(template: str) -> str:
    """The template, or AzchatError in one sentence when it cannot make a safe editor link."""
    m = _SCHEME.match(template)
    if not m or ("{path}" not in template and "{rel}" not in template):
        raise AzchatError(f"AZCHAT_EDITOR_URL must be a URL template such as {DEFAULT_TEMPLATE} "
                          "(a scheme, then {path} or {rel}, optionally {line}).")
    if m.group(1).lower() in _REFUSED:
        raise AzchatError(f"AZCHAT_EDITOR_URL may not use the {m.group(1)}: scheme; use your editor's own "
                          f"scheme, e.g. {DEFAULT_TEMPLATE}.")
    return template


def template_from_env() -> str:
    """AZCHAT_EDITOR_URL (checked), or the default template."""
    return check_template(os.environ.get("AZCHAT_EDITOR_URL") or DEFAULT_TEMPLATE)


def find_vault(notes_dir: Path) -> Path | None:
    """The Obsidian vault folder holding the notes: the notes folder or the nearest folder above with
    `.obsidian/`."""
    here = Path(os.path.abspath(notes_dir))
    for folder in (here, *here.parents):
        if (folder / ".obsidian").is_dir():
            return folder
    return None


@dataclass(frozen=True)
class EditorLinks:
    """Makes the open-in-editor URL for (relative note path, line)."""

    notes_dir: Path
    vault: Path | None
    template: str

    @classmethod
    def for_notes(cls, notes_dir, template: str | None = None) -> "EditorLinks":
        notes = Path(os.path.abspath(notes_dir))
        template = template_from_env() if template is None else check_template(template)
        return cls(notes, find_vault(notes), template)

    @property
    def editor(self) -> str:
        """What the links open, in words (for tooltips)."""
        if self.vault is not None:
            return "Obsidian"
        scheme = _SCHEME.match(self.template).group(1).lower()
        return {"vscode": "VS Code", "vscodium": "VSCodium", "cursor": "Cursor", "idea": "IntelliJ IDEA",
                "subl": "Sublime Text", "zed": "Zed"}.get(scheme, "your editor")

    def url(self, rel: str, line: int = 1) -> str:
        if self.vault is not None:
            inside = (self.notes_dir / rel).relative_to(self.vault).as_posix()
            return f"obsidian://open?vault={quote(self.vault.name, safe='')}&file={quote(inside, safe='')}"
        path = (self.notes_dir / rel).as_posix()
        url = self.template
        if path.startswith("/") and "/{path}" in url:
            path = path[1:]                       # vscode://file/{path}: one slash before the absolute path
        return (url.replace("{path}", quote(path, safe="/:")).replace("{rel}", quote(rel, safe="/"))
                .replace("{line}", str(int(line))))
