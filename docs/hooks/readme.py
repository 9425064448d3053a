"""mkdocs hook: pages include README.md's sections.

README.md is what GitHub and PyPI show, so its set-up, quick start and real run are written once,
there, between `<!-- docs:NAME -->` and `<!-- /docs:NAME -->` markers; a page says
`<!-- include: README.md NAME -->` and gets that text at build time, so the site and the README
cannot disagree. README's links are relative to the repository root: a link into docs/ is made
relative to the including page, and a link to any other repository file (eval/RESULTS.md,
SECURITY.md) becomes its path in code font, since `mkdocs build --strict` refuses links that leave
docs_dir. tests/test_docs.py expands pages with the same `expand` before it runs their commands.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^<!-- include: (?P<file>\S+) (?P<name>[\w-]+) -->$", re.MULTILINE)
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def section(text: str, name: str) -> str:
    """The text between a README's `<!-- docs:NAME -->` and `<!-- /docs:NAME -->` markers."""
    match = re.search(rf"^<!-- docs:{re.escape(name)} -->\n(.*?)^<!-- /docs:{re.escape(name)} -->$", text,
                      re.MULTILINE | re.DOTALL)
    if match is None:
        raise ValueError(f"no section {name!r} (<!-- docs:{name} --> ... <!-- /docs:{name} -->) to include")
    return match.group(1)


def relink(text: str, page_path: str) -> str:
    """Root-relative links as seen from docs/PAGE_PATH; code blocks are left alone."""
    page_dir = posixpath.dirname(page_path)
    out, fence = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        if fence:
            out.append(line)
            continue

        def sub(m: re.Match[str]) -> str:
            bang, label, target = m.groups()
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                return m.group(0)
            path, _, anchor = target.partition("#")
            if path.startswith("docs/") and path != "docs/":
                rel = posixpath.relpath(path[len("docs/"):], page_dir or ".")
                return f"{bang}[{label}]({rel}{'#' + anchor if anchor else ''})"
            return f"`{path}`" if label.startswith("`") else f"{label} (`{path}`)"

        out.append(LINK.sub(sub, line))
    return "\n".join(out)


def expand(markdown: str, page_path: str, root: Path = ROOT) -> str:
    """The page with every include marker replaced by the named section, its links fixed."""
    def sub(m: re.Match[str]) -> str:
        text = (root / m["file"]).read_text(encoding="utf-8")
        return relink(section(text, m["name"]).rstrip("\n"), page_path)

    return INCLUDE.sub(sub, markdown)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (mkdocs' hook signature)
    return expand(markdown, page.file.src_uri)

