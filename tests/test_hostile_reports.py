"""Issue 30, rows 5, 6, 9, 10, 12 and 13: what the reports say about hostile input, through the real
CLI (a subprocess) and a real server on 127.0.0.1. Each test asserts the status or message the row
now gives: texts cut by the embedding model counted and warned, a zeroed cached vector recomputed,
markdown that no text, id or name can turn into HTML or new table rows, the reference size bounded
and its extrapolation warned, self-BLEU n/a exactly where distinct-4 is.
"""

from __future__ import annotations

import json
import re

import numpy as np
from test_hostile_inputs import one_error_line, run_cli, write_jsonl

HOSTILE = [
    "</script><script>alert(1)</script>",
    '<iframe src="javascript:alert(2)"></iframe>',
    "line one\n| forged | row |\nline two",
    "pipes | in [a](javascript:alert(3)) `code` \\| text",
]
LIVE_TAGS = re.compile(r"<(script|iframe|img|a)\b", re.IGNORECASE)


def rendered(markdown: str) -> str:
    """The markdown as a renderer that lets raw HTML through would show it (the dangerous setting)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def table_rows(html: str, heading: str) -> list[list[str]]:
    """The body rows of the table following `heading`, as cell lists."""
    section = html.split(heading, 1)[1].split("</table>", 1)[0]
    body = section.split("<tbody>", 1)[1] if "<tbody>" in section else ""
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def hostile_rows() -> list[dict]:
    """Each hostile text twice (so it is a cluster of its own, shown in the clusters table), hostile ids."""
    return [{"id": f"{kind}{i}|<img src=x onerror=alert({i})>", "text": text}
            for i, text in enumerate(HOSTILE) for kind in ("a", "b")]


def assert_escaped(markdown: str, *, every_text: bool) -> None:
    """No live tag; the clusters table has one row of 5 cells per cluster; with `every_text` (each
    hostile text a cluster of its own) each text shows in one cell, literally."""
    html = rendered(markdown)
    assert not LIVE_TAGS.search(html), LIVE_TAGS.search(html)
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    rows = table_rows(html, "Largest clusters")
    clusters = int(re.search(r"\((\d+) clusters \+", markdown).group(1))
    assert len(rows) == clusters and all(len(cells) == 5 for cells in rows), rows
    ids = " ".join(cells[4] for cells in rows)
    assert "a0|&lt;img src=x onerror=alert(0)&gt;" in ids
    if not every_text:
        return
    assert clusters == len(HOSTILE)
    shown = " ".join(cells[3] for cells in rows)
    assert "line one | forged | row | line two" in shown  # one cell, on one line, its pipes literal
    assert "pipes | in [a](javascript:alert(3)) `code` \\| text" in shown  # no link, no code span


# ------------------------------------------------------------------------------ row 5


def test_texts_past_the_embedding_models_limit_are_counted_and_warned(tmp_path, subprocess_env):
    opening = ("the quarterly weather report for the northern coast says " * 60)[:3000]
    rows = [{"id": "a", "text": opening + ("set an alarm for six in the morning " * 3000)[:97_000]},
            {"id": "b", "text": opening + ("play some jazz music in the kitchen " * 3000)[:97_000]}]
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    result = run_cli(["score", str(path), "--id-field", "id", "--metrics", "none", "--format", "json", "--no-record"],
                     subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_modes"] == 1  # what MiniLM sees: the shared opening; the report now says so
    assert report["truncated"]["count"] == 0  # no LLM read them
    assert report["embedding_truncated"] == {"count": 2, "limit_tokens": 256, "example_ids": ["a", "b"]}
    assert ("2 text(s) longer than the embedding model's 256 word pieces were cut for it (their vectors, and "
            "so their modes and the embedding metrics, come from the first part only)") in report["warnings"]
    markdown = run_cli(["score", str(path), "--metrics", "none", "--format", "markdown", "--no-record"],
                       subprocess_env)
    assert "- texts cut for the embedding model: 2 (longer than 256 word pieces)" in markdown.stdout


# ------------------------------------------------------------------------------ row 6


def test_a_zero_vector_in_the_embedding_cache_is_damage_recomputed(tmp_path, cache_dir, subprocess_env):
    from clusterdiv.core.cache import ModelCache
    from clusterdiv.modes.embed import Embedder, embedding_cache_key

    texts = ["set an alarm for six", "play some jazz music", "what's the weather in paris", "tell me a joke"]
    path = write_jsonl(tmp_path / "batch.jsonl", [{"text": t} for t in texts])
    args = ["score", str(path), "--metrics", "none", "--format", "json", "--no-record"]
    first = run_cli(args, subprocess_env)
    assert first.returncode == 0, first.stderr
    key = embedding_cache_key(texts[0], model=Embedder())
    with ModelCache(cache_dir) as cache:
        size = len(cache.get(key))
        cache.set(key, np.zeros(size // 4, dtype=np.float32).tobytes())
    again = run_cli(args, subprocess_env)
    assert again.returncode == 0, again.stderr
    assert f"warning: 1 damaged cache entries in {cache_dir} were ignored and recomputed" in again.stderr
    before, after = json.loads(first.stdout), json.loads(again.stdout)
    assert after["timings"]["embedding_calls"] == 1  # the zeroed vector, and only it
    before.pop("timings"), after.pop("timings")
    assert before == after  # the same modes (the vector, encoded alone, may differ in its last bits)


# ------------------------------------------------------------------------------ rows 9 and 10


def test_cli_markdown_report_escapes_html_newlines_and_pipes(tmp_path, subprocess_env):
    path = write_jsonl(tmp_path / "hostile.jsonl", hostile_rows())
    result = run_cli(["score", str(path), "--id-field", "id", "--metrics", "none", "--format", "markdown",
                      "--threshold", "0.05", "--no-record"], subprocess_env)  # only copies merge
    assert result.returncode == 0, result.stderr
    assert "<script" not in result.stdout and "<iframe" not in result.stdout and "<img" not in result.stdout
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in result.stdout
    assert_escaped(result.stdout, every_text=True)


def test_service_markdown_report_escapes_html_newlines_and_pipes(tmp_path):
    from service_server import ServerProcess, wait_for_job

    proc = ServerProcess(tmp_path, args=["--model", "fake/echo"]).start()
    try:
        job = {"kind": "score", "texts": hostile_rows(), "options": {"metrics": "none", "bootstrap": 20}}
        with proc.client() as client:
            submitted = client.post("/v1/jobs", json=job)
            assert submitted.status_code == 202, submitted.text
            done = wait_for_job(client, submitted.json()["id"])
            assert done["status"] == "succeeded", done
            markdown = client.get(done["links"]["markdown"])
    finally:
        proc.stop()
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith("text/markdown")
    assert "<script" not in markdown.text and "<iframe" not in markdown.text
    assert_escaped(markdown.text, every_text=False)


def test_compare_markdown_escapes_batch_names(tmp_path, subprocess_env):
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in ["set an alarm", "play jazz", "book a flight"]])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": t} for t in ["tell a joke", "play rock", "cook pasta"]])
    names = "x|<img src=x onerror=alert(1)>,y\u2028<script>alert(2)</script>"
    result = run_cli(["compare", str(a), str(b), "--names", names, "--metrics", "none", "--permutations", "99",
                      "--format", "markdown"], subprocess_env)
    assert result.returncode == 0, result.stderr
    assert "<img" not in result.stdout and "<script" not in result.stdout
    html = rendered(result.stdout)
    assert not LIVE_TAGS.search(html)
    ranking = table_rows(html, "clusterdiv comparison")
    assert len(ranking) == 2 and all(len(cells) == 11 for cells in ranking), ranking
    assert {cells[1] for cells in ranking} == {"x|&lt;img src=x onerror=alert(1)&gt;",
                                                "y &lt;script&gt;alert(2)&lt;/script&gt;"}


def test_check_summary_and_history_markdown_escape_the_batch_id(tmp_path, subprocess_env):
    path = write_jsonl(tmp_path / "batch.jsonl", [{"text": t} for t in ["set an alarm", "play jazz", "cook pasta"]])
    batch_id = "x` <img src=x onerror=alert(1)> `y"
    assert run_cli(["track", "ds", "--min", "score_normalized=0"], subprocess_env).returncode == 0
    summary = tmp_path / "summary.md"
    result = run_cli(["check", str(path), "--dataset", "ds", "--batch-id", batch_id, "--summary", str(summary),
                      "--metrics", "none"], subprocess_env)
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert "- batch ``x` <img src=x onerror=alert(1)> `y`` from " in text  # a fence no backtick inside closes
    html = rendered(text)
    assert not LIVE_TAGS.search(html)
    assert "<code>x` &lt;img src=x onerror=alert(1)&gt; `y</code>" in html
    history = run_cli(["history", "ds", "--format", "markdown"], subprocess_env)
    assert history.returncode == 0, history.stderr
    runs = table_rows(rendered(history.stdout), "<th>recorded (UTC)</th>")
    assert len(runs) == 1 and runs[0][2] == "x` &lt;img src=x onerror=alert(1)&gt; `y"
    assert not LIVE_TAGS.search(rendered(history.stdout))


# ------------------------------------------------------------------------------ row 12


def test_reference_size_is_bounded_and_its_extrapolation_warned(tmp_path, subprocess_env):
    from corpora import intent_corpus

    rows = [{"text": t} for t, _ in intent_corpus(["weather", "alarm", "joke", "music"], 20)]
    path = write_jsonl(tmp_path / "twenty.jsonl", rows)
    absurd = run_cli(["score", str(path), "--reference-size", "1000000000000", "--no-record"], subprocess_env)
    err = one_error_line(absurd)
    assert "Invalid value for '--reference-size': Input should be less than or equal to 1000000" in err
    result = run_cli(["score", str(path), "--reference-size", "1000", "--metrics", "none", "--format", "json",
                      "--no-record"], subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert ("score_normalized extrapolates from 20 scored samples to reference_size 1000 (50 times as many): the "
            "extrapolation (Chao et al. 2014) is reliable up to about 3 times the sample, so score more examples "
            "or compare at a smaller reference_size") in report["warnings"]


# ------------------------------------------------------------------------------ row 13


def test_self_bleu_is_na_exactly_where_distinct_4_is(tmp_path, subprocess_env):
    two = write_jsonl(tmp_path / "two.jsonl", [{"text": "set an alarm"}] * 2)
    result = run_cli(["metrics", str(two), "--metrics", "lexical", "--format", "json"], subprocess_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    reason = "no text has 4 tokens, so there are no 4-grams"
    for name in ("self_bleu", "distinct_4"):
        assert report["metrics"][name]["value"] is None
        assert report["metrics"][name]["details"]["reason"] == reason
    table = run_cli(["metrics", str(two), "--metrics", "lexical"], subprocess_env)
    assert table.returncode == 0, table.stderr
    for name in ("self_bleu", "distinct_4"):
        assert f"warning: {name} is n/a: {reason}" in table.stdout
    four = write_jsonl(tmp_path / "four.jsonl", [{"text": "set an alarm now"}] * 2)
    defined = json.loads(run_cli(["metrics", str(four), "--metrics", "lexical", "--format", "json"],
                                 subprocess_env).stdout)["metrics"]
    assert defined["self_bleu"]["value"] == 1.0 and defined["distinct_4"]["value"] == 0.5
