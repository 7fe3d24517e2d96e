"""The documentation as a whole: a short front page, links that resolve, no words from how it was made.

(The commands it shows are run by ``tests/test_doc_commands.py``; the command reference is checked
against the code by ``tests/test_reference.py``.)
"""

from __future__ import annotations

import re
from pathlib import Path

from rescorer.cli.reference import render_reference

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
# words about how the project was made, not about what it does: issue numbers, task cards, seed files,
# work sessions, one machine's paths
NOT_FOR_USERS = re.compile(r"\bissues? \d|\bthe issue\b|\bissue's|\bcards?\b|\bseeds?/|seed `0\d\d|\bsessions?\b|"
                           r"/work/|/home/\w|/root/", re.IGNORECASE)


def documents():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def user_texts():
    """(name, text) of everything a user reads: README, docs/, the recipes' results, data notes, --help."""
    paths = documents() + sorted(ROOT.glob("recipes/*/*.md")) + sorted(ROOT.glob("data/**/*.md"))
    yield from ((str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in paths)
    yield "admmq --help texts", render_reference()


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    headings = [ln for ln in lines if ln.startswith("## ")]
    assert headings[:2] == ["## Two commands", "## Quick start: your own n-best lists"], headings
    assert "## Changelog" in headings and "## Documentation" in headings
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)", "\n".join(lines)))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")}
    assert on_disk <= linked, f"docs pages missing from the README's map: {sorted(on_disk - linked)}"


def test_no_words_about_how_the_project_was_made():
    found = [f"{name}: {m.group(0)!r} in ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
             for name, text in user_texts() for m in NOT_FOR_USERS.finditer(text)]
    assert not found, "\n".join(found)
    for bad in ("see issue 19", "the card's command", "seeds/004_x.txt", "in earlier sessions", "/work/runs/std",
                "the issue's target"):
        assert NOT_FOR_USERS.search(bad), bad
    for fine in ("discard the rest", "--seed 20251123", "the sessionless API"):
        assert not NOT_FOR_USERS.search(fine), fine


def anchors(path: Path) -> set:
    """GitHub's anchors of the headings of ``path``: lower case, punctuation dropped, spaces to hyphens."""
    out, fenced = set(), False
    for ln in path.read_text(encoding="utf-8").splitlines():
        fenced ^= ln.startswith("```")
        if not fenced and ln.startswith("#"):
            title = ln.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_links_between_the_documents_resolve():
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken, checked = [], 0
    for doc in documents():
        for target in link.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (doc.parent / file).resolve() if file else doc
            checked += 1
            if not dest.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 50
    assert not broken, "\n".join(broken)
    assert {"admmq-nbest-convert", "the-4-gram-lmplz-or-irstlm", "rescoring-jobs-with-kaldis-runners"} <= (
        anchors(ROOT / "docs/commands.md") | anchors(ROOT / "docs/ptb-recipe.md") | anchors(ROOT / "docs/kaldi.md"))
