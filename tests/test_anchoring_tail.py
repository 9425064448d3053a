"""Tail audit: a rare case missing from a batch must be the loudest thing in the report.

The batches are templated texts over known intents (tests/corpora.py), so which examples truly
belong to a tail entry is known, and the fake judge (tests/fake_llm.py, `fake/judge`) answers
membership from keywords of the description, instantly and deterministically.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from corpora import intent_corpus
from rich.console import Console

from clusterdiv.core.errors import InputError
from clusterdiv.core.records import Example
from clusterdiv.tasks.anchoring import audit_tail, load_tail_spec, render_markdown, render_table
from clusterdiv.tasks.anchoring.tail import CONTROLS_PER_ENTRY
from clusterdiv.tasks.anchoring.tail_rules import (
    MIN_EVIDENCE,
    embedding_members,
    entry_similarities,
    seed_rank_share,
)

COMMON = ["weather", "music", "joke", "recipe", "flight", "translate"]


def batch_without(missing: list[str], n: int = 96, seed: int = 1) -> list[Example]:
    intents = COMMON + [t for t in ("alarm", "timer", "calories") if t not in missing]
    return [Example(id=f"b{i}", text=t, label=y) for i, (t, y) in enumerate(intent_corpus(intents, n, seed=seed))]


def seeds(intent: str, n: int = 4) -> list[str]:
    return list(dict.fromkeys(t for t, _ in intent_corpus([intent], n, seed=9)))


SPEC = {"entries": [
    {"name": "alarm", "description": "setting an alarm or a wake-up call", "seeds": seeds("alarm")},
    {"name": "timer", "description": "starting a countdown timer or minutes reminder", "seeds": seeds("timer")},
    {"name": "calories", "description": "calories, protein and nutrition of a food", "seeds": seeds("calories")},
]}


def test_removed_entry_is_uncovered_and_reported_first(cache, fake_llm, embedder):
    batch = batch_without(["alarm"])
    report = audit_tail(batch, spec=SPEC, model="fake/judge", embedding_model=embedder, cache=cache)
    section = report.tail_audit
    assert report.command == "audit-tail" and section["uncovered"] == ["alarm"]
    first = section["entries"][0]
    assert first["name"] == "alarm" and first["flag"] == "uncovered" and first["count"] == 0
    label = {e.id: e.label for e in batch}
    for entry in section["entries"][1:]:
        assert entry["flag"] == "ok" and entry["count"] >= 3
        # under `both`, every counted example is a true member: both signals had to agree
        assert {label[i] for i in entry["example_ids"]} == {entry["name"]}
        assert entry["decided_by"].startswith("both")
    markdown = render_markdown(report)
    assert markdown.splitlines()[0].startswith("**UNCOVERED") and "alarm" in markdown.splitlines()[0]
    assert "| entry | flag | count |" in markdown
    console = Console(file=StringIO(), width=160, record=True)
    render_table(report, console)
    text = console.export_text(clear=False)
    assert text.startswith("UNCOVERED: 1 of 3 tail entries") and "Tail entries (both policy)" in text
    html = console.export_html()
    assert "color: #800000" in html and html.index("UNCOVERED") < html.index("Tail entries")  # red, first


def test_policies_report_their_signal_and_embedding_needs_no_llm(cache, fake_llm, embedder):
    batch = batch_without(["alarm"])
    results, calls = {}, {}
    for policy in ("both", "either", "llm", "embedding"):
        report = audit_tail(batch, spec=SPEC, judge=policy, model="fake/judge", embedding_model=embedder,
                            cache=cache)
        results[policy] = {e["name"]: e for e in report.tail_audit["entries"]}
        calls[policy] = report.tail_audit["llm_calls"]
        assert report.tail_audit["policy"] == policy
    # The judge's answers are cached: only the first LLM policy pays; `embedding` never asks.
    assert calls["both"] > 0 and calls["either"] == calls["llm"] == calls["embedding"] == 0
    assert results["embedding"]["timer"]["llm_count"] is None
    for name in ("timer", "calories"):
        both, either = results["both"][name], results["either"][name]
        assert both["count"] <= min(both["llm_count"], both["embedding_count"])
        assert either["count"] >= max(either["llm_count"], either["embedding_count"])
        assert results["llm"][name]["count"] == results["llm"][name]["llm_count"]
        assert results["embedding"][name]["decided_by"] == "embedding"
    assert all(r["alarm"]["flag"] == "uncovered" for r in results.values())


def test_prefilter_bounds_the_judge_and_reruns_are_free(cache, fake_llm, embedder):
    batch = batch_without([])
    report = audit_tail(batch, spec=SPEC, model="fake/judge", judge_top=7, embedding_model=embedder, cache=cache)
    section = report.tail_audit
    assert section["judgements"] == 7 * 3 and section["judgements_without_prefilter"] == len(batch) * 3
    # the 7 prefiltered candidates per entry, plus the negative controls that calibrate the judge
    assert 0 < section["llm_calls"] <= 21 + 3 * CONTROLS_PER_ENTRY and "7 examples most similar" in section["prefilter"]
    assert section["judge_trusted"] is True and section["judge_control_yes_rate"] == 0.0
    again = audit_tail(batch, spec=SPEC, model="fake/judge", judge_top=7, embedding_model=embedder, cache=cache)
    assert again.tail_audit["llm_calls"] == 0 and again.tail_audit["llm_cache_hits"] == section["llm_calls"]
    assert again.tail_audit["entries"] == section["entries"]


def test_a_judge_that_says_yes_to_everything_is_detected_and_not_trusted(cache, fake_llm, embedder):
    batch = batch_without(["alarm"])
    report = audit_tail(batch, spec=SPEC, judge="llm", model="fake/yesman", judge_top=7, embedding_model=embedder,
                        cache=cache)
    section = report.tail_audit
    assert section["judge_trusted"] is False and section["judge_control_yes_rate"] == 1.0
    assert any("not calibrated" in note for note in section["notes"])
    # coverage fell back to the embedding rule: the removed entry is still found missing
    assert [e["decided_by"] for e in section["entries"]] == ["embedding"] * len(section["entries"])
    assert "alarm" in section["uncovered"]


def test_tail_derived_from_the_rarest_reference_labels(cache, embedder):
    # Real data where alarm and timer are rare; the batch has timer but lost alarm.
    rows = intent_corpus(COMMON, 120, seed=3) + intent_corpus(["alarm", "timer"], 8, seed=4)
    reference = [Example(id=f"r{i}", text=t, label=y) for i, (t, y) in enumerate(rows)]
    report = audit_tail(batch_without(["alarm", "calories"]), reference=reference, tail_size=2,
                        judge="embedding", embedding_model=embedder, cache=cache)
    section = report.tail_audit
    assert {e["name"] for e in section["entries"]} == {"alarm", "timer"}
    entries = {e["name"]: e for e in section["entries"]}
    assert entries["alarm"]["flag"] == "uncovered" and entries["alarm"]["reference_count"] == 4
    assert entries["timer"]["flag"] == "ok" and entries["timer"]["n_seeds"] == 4
    assert "contrast" in section["calibration"] and "0.5" in section["calibration"]
    assert section["llm_calls"] == 0 and section["judge_model"] is None


def test_min_count_and_min_share_flag_thin_entries(cache, embedder):
    report = audit_tail(batch_without(["alarm"]), spec=SPEC, judge="embedding", min_count=1000,
                        embedding_model=embedder, cache=cache)
    flags = {e["name"]: e["flag"] for e in report.tail_audit["entries"]}
    assert flags == {"alarm": "uncovered", "timer": "under", "calories": "under"}
    share = audit_tail(batch_without(["alarm"]), spec=SPEC, judge="embedding", min_share=0.5,
                       embedding_model=embedder, cache=cache)
    assert set(share.tail_audit["under"]) == {"timer", "calories"}


@pytest.mark.parametrize("text, message", [
    ("entries:\n  - name: a\n    description: d\n  - name: b\n    descripton: typo\n",
     "entry 2 ('b'): unknown field 'descripton'"),
    ("entries:\n  - name: a\n    description: d\n  - name: b\n", "entry 2 ('b'): field 'description' is required"),
    ("entries:\n  - name: a\n    description: d\n    seeds: hello\n", "entry 1 ('a'): field 'seeds'"),
    ("entries:\n  - name: a\n    description: d\n  - name: a\n    description: e\n", "duplicate entry name 'a'"),
    ("entries: []\n", "field 'entries'"),
    ("tail:\n  - name: a\n", "unknown field 'tail'"),
    ("entries:\n  - name: a\n    description: [d\n", "not valid YAML"),
    ("", "got empty"),
])
def test_bad_specs_name_the_entry_and_field(tmp_path: Path, text: str, message: str):
    path = tmp_path / "tail.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_tail_spec(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_bare_list_and_json_are_accepted(tmp_path: Path):
    (tmp_path / "t.yaml").write_text("- name: a\n  description: d\n  seeds: [x, y]\n")
    (tmp_path / "t.json").write_text('{"entries": [{"name": "a", "description": "d"}]}')
    assert load_tail_spec(tmp_path / "t.yaml").entries[0].seeds == ["x", "y"]
    assert load_tail_spec(tmp_path / "t.json").entries[0].name == "a"


def test_empty_batch_and_conflicting_sources_are_input_errors(cache):
    with pytest.raises(InputError, match="empty"):
        audit_tail([], spec=SPEC, judge="embedding", cache=cache)
    with pytest.raises(InputError, match="not both"):
        audit_tail(["a text"], spec=SPEC, reference=["b"], cache=cache)


def test_entries_without_seeds_fall_back_to_the_llm(cache, fake_llm, embedder):
    spec = {"entries": [{"name": "timer", "description": "starting a countdown timer or minutes reminder"}]}
    batch = batch_without(["alarm"])
    report = audit_tail(batch, spec=spec, model="fake/judge", embedding_model=embedder, cache=cache)
    entry = report.tail_audit["entries"][0]
    assert entry["decided_by"].startswith("llm (no seeds") and entry["embedding_count"] is None
    label = {e.id: e.label for e in batch}
    assert entry["count"] >= 3 and {label[i] for i in entry["example_ids"]} == {"timer"}
    only_embedding = audit_tail(batch, spec=spec, judge="embedding", embedding_model=embedder, cache=cache)
    assert only_embedding.tail_audit["entries"][0]["decided_by"].startswith("embedding (description only")


# ---------------------------------------------------------------- the hard case: a near neighbour stays

# One product's account-security requests, written for this test. `reset_password` is a spec entry
# removed from the batch while `password_reset_reason` ("why was my password reset"), its nearest
# neighbour, stays: MiniLM puts the two as close as reset_password's own seeds are to each other.
SECURITY = {
    "password_reset_reason": [
        "why was my password reset", "who reset my password without asking me",
        "my password got reset and i don't know why", "why did you reset my account password",
        "i got an email saying my password was reset, why", "what caused my password to be reset",
        "why do i have to make a new password, it was reset", "somebody reset my password, was it you",
    ],
    "change_pin": [
        "change the pin on my debit card", "i want a new pin for my card", "how do i update my card pin",
        "set a different pin for my atm card", "can i pick a new four digit pin",
        "replace my card pin with a new one", "i'd like to change my pin number",
        "update the pin code on my credit card",
    ],
    "two_factor": [
        "turn on two factor authentication", "enable 2fa on my account", "set up two step verification",
        "i want a code texted to me every time i log in", "add an authenticator app to my login",
        "how do i activate two-factor sign in", "require a verification code when i sign in",
        "switch on two step login for my account",
    ],
    "account_locked": [
        "my account is locked", "i got locked out after too many attempts", "unlock my account please",
        "why can't i log in, it says account locked", "my login is blocked", "help, i'm locked out of my account",
        "the app says my account has been suspended", "how long until my locked account opens again",
    ],
    "change_email": [
        "change the email address on my account", "update my contact email",
        "i have a new email, please update it", "use a different email for my login",
        "switch my account email to my work address", "how do i edit my email on file",
        "replace my old email address", "set a new email for notifications",
    ],
}
SECURITY_SPEC = [
    {"name": "reset_password", "description": "resetting a forgotten password",
     "seeds": ["i forgot my password, how do i reset it", "reset my password",
               "help me set a new password, i can't remember mine"]},
    {"name": "change_pin", "description": "changing a card pin",
     "seeds": ["i need to change my pin", "how can i set a new pin on my card", "change my card's pin code"]},
    {"name": "two_factor", "description": "turning on two-factor authentication",
     "seeds": ["enable two factor authentication", "can i get login codes sent to my phone",
               "set up 2-step verification"]},
]
SECURITY_BATCH = [Example(id=f"{intent}{i}", text=t, label=intent)
                  for intent, texts in SECURITY.items() for i, t in enumerate(texts)]


def test_a_removed_entry_next_to_a_near_neighbour_that_stays_is_flagged(cache, embedder):
    report = audit_tail(SECURITY_BATCH, spec=SECURITY_SPEC, judge="embedding", embedding_model=embedder, cache=cache)
    section = report.tail_audit
    assert section.coverage_rule == "margin" and section.evidence_floor >= 2
    assert section.uncovered == ["reset_password"] and section.under == []
    label = {e.id: e.label for e in SECURITY_BATCH}
    for entry in section.entries:
        if entry.name != "reset_password":
            # a present entry keeps enough of its own members, and only its own
            assert entry.flag == "ok" and entry.count >= section.evidence_floor
            assert {label[i] for i in entry.example_ids} == {entry.name}
    stray = next(e for e in section.entries if e.name == "reset_password")
    if stray.count:  # a stray match below the floor is shown, not hidden
        assert any("evidence floor" in note for note in section.notes)
    console = Console(file=StringIO(), width=160, record=True)
    render_table(report, console)
    assert "matching examples (the evidence floor)" in console.export_text()
    # the rule before the margins: the neighbour's examples vouch for the missing entry
    old = audit_tail(SECURITY_BATCH, spec=SECURITY_SPEC, judge="embedding", rule="nearest-seed",
                     embedding_model=embedder, cache=cache).tail_audit
    assert old.coverage_rule == "nearest-seed" and old.evidence_floor == 1
    covered_by = next(e for e in old.entries if e.name == "reset_password")
    assert covered_by.flag == "ok" and {label[i] for i in covered_by.example_ids} == {"password_reset_reason"}
    with pytest.raises(InputError, match="unknown coverage rule"):
        audit_tail(SECURITY_BATCH, spec=SECURITY_SPEC, judge="embedding", rule="knn", cache=cache)


def test_the_margin_tests_on_known_geometry():
    """Seeds exchangeable with their matches are kept; seeds at the edge of another group are not."""
    rng = np.random.default_rng(0)

    def group(centre: np.ndarray, k: int, spread: float) -> np.ndarray:
        v = centre + spread * rng.standard_normal((k, centre.size))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    a, b = np.eye(8)[0], np.eye(8)[1]
    present = group(a, 12, 0.25)  # an entry's members, its seeds drawn like them
    seeds_present = group(a, 3, 0.25)
    neighbour = group(0.6 * b + 0.8 * np.eye(8)[2], 12, 0.1)  # a tight neighbouring intent that stays
    seeds_missing = group(b, 3, 0.1)  # the seeds of an entry missing from the batch, at its edge
    X = np.vstack([present, neighbour]).astype(np.float32)
    S = np.vstack([seeds_present, seeds_missing]).astype(np.float32)
    owner = np.array([0, 0, 0, 1, 1, 1])
    has_seeds = np.ones(2, dtype=bool)
    sim, nearest = entry_similarities(X, S, owner, np.eye(8, dtype=np.float32)[:2], has_seeds)
    old = embedding_members(X, sim, nearest, has_seeds, [0.3, 0.3], rule="nearest-seed")
    new = embedding_members(X, sim, nearest, has_seeds, [0.3, 0.3], rule="margin")
    assert old[12:, 1].sum() >= 2  # without the margins the neighbour covers the missing entry
    assert new[12:, 1].sum() < MIN_EVIDENCE and new[:12, 0].sum() >= MIN_EVIDENCE
    assert not new[12:, 0].any() and not new[:12, 1].any()
    # the rank share alone: the missing entry's seeds rank behind every sibling of the neighbour
    candidates = sim[:, 1] >= 0.3
    assert not seed_rank_share(X, sim[:, 1], candidates & (np.arange(24) >= 12), share=0.25).any()
