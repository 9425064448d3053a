"""The explorer as ONE self-contained HTML file: plotly.js and the data inline, no network at all.

A page that fetches plotly from a CDN breaks on an air-gapped machine and leaks that someone
opened it; a file with everything inside can be mailed, archived with a run, or opened years later.

The data travels as JSON in `<script type="application/json" id="exploration-data">`. Example
texts are arbitrary user data, so every `<`, `>` and `&` in that JSON is written as a `\\u00XX`
escape: a text containing `</script>` cannot end the element, and JSON.parse restores it exactly.
The page's script inserts user-derived text with `textContent` only, never as HTML.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from clusterdiv.tasks.explore.model import Exploration

TEMPLATES = Path(__file__).parent / "templates"
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


def exploration_json_for_html(exploration: Exploration) -> str:
    """The Exploration's JSON, safe to place inside a <script> element (parses back unchanged)."""
    return exploration.model_dump_json().translate(_JSON_ESCAPES)


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("explorer.html.j2")


def coverage_of(exploration: Exploration) -> str | None:
    """The line the page's header opens with against a reference: the report's own coverage line
    (`reports.coverage`, as the CLI table and the markdown report print it); None without one."""
    from clusterdiv.reports.coverage import coverage_line

    if not exploration.has_reference:
        return None
    return coverage_line(exploration.report.cluster_shares)


def render_explorer_html(exploration: Exploration) -> str:
    """The whole page as one string (a few MB, most of it plotly.js)."""
    return _template().render(
        title=exploration.title,
        coverage=coverage_of(exploration),  # plain text, autoescaped
        plotly_js=Markup(_plotly_js()),  # plotly's own bundle, inlined the way plotly itself does
        data_json=Markup(exploration_json_for_html(exploration)),  # escaped for <script> above
    )
