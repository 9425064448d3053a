"""Escaping for every markdown view (reports, compare, the check summary, history, the service's
`report?format=markdown`): what they print comes from the user's data.

A text holding `</script><script>` or `<iframe src="javascript:...">` would otherwise reach the
markdown as live HTML, a pipe would split a table row, and a newline would end the row or list
item and could open a block of its own (in CommonMark a line starting `<script` opens an HTML
block). Two forms, because markdown has two literal contexts: `md_text` for table cells, list
items and headings, `md_code` for an inline code span.
"""

from __future__ import annotations

import re

_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# The backslash first: a text's own backslash must not escape the pipe that follows it. Backticks
# would open a code span, brackets a link or image; `|` splits a table row.
_MARKUP = re.compile(r"([\\`\[\]|])")


def _one_line(value: object) -> str:
    """Every line break `str.splitlines` knows (\\r, \\n, \\u2028, ...) becomes a space."""
    return " ".join(str(value).splitlines())


def md_text(value: object) -> str:
    """`value` as literal text on one line: HTML as entities, markdown's link, code and table marks escaped."""
    text = _MARKUP.sub(r"\\\1", _one_line(value))
    return "".join(_HTML.get(char, char) for char in text)


def md_code(value: object) -> str:
    """`value` as an inline code span that nothing in it can close.

    Inside a code span nothing is markup (HTML neither), so only its end needs guarding: the fence
    is one backtick longer than the longest run of backticks in the value (CommonMark 6.1), padded
    with a space where the value starts or ends with a backtick or a space (which the span strips).
    """
    text = _one_line(value) or " "
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"
