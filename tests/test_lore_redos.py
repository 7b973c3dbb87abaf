"""Key regexes from cards and lorebooks cannot stall a scan: RE2 runs what it can in linear time,
lookaround and backreferences run with a time limit, and what is not run is reported with a reason."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kataribe.lore.engine import ActivationResult, ScanInput, SkipReason, activate_entries
from kataribe.lore.matching import check_key
from kataribe.lore.model import Lorebook, LoreEntry, WorldInfoSettings
from kataribe.lore.safe_regex import SCAN_BUDGET_S
from kataribe.lore.timed import LoreTimedState

SRC = Path(__file__).resolve().parents[1] / "src"
# the freezes of issue 8: each passed the old nested-quantifier check, each backtracks for ages
HOSTILE = [r"(.|\s)*QQQ", "(a|aa)+$", "a*" * 40 + "b", "(a{1,100}){1,100}$", "(a?){30}a{30}$", "(a+)+$"]
HOSTILE_TEXT = ("a" * 400 + " " * 30 + "\n") * 10 + "!"


def fire(entries: list[LoreEntry], text: str) -> ActivationResult:
    return activate_entries(
        [Lorebook(name="book", entries=entries)],
        ScanInput(messages=[text], turn=1),
        WorldInfoSettings(),
        state=LoreTimedState(),
        count_tokens=lambda t: len(t.split()),
        max_context=100_000,
        rng=random.Random(0),
    )


SCAN_IN_CHILD = """
import json, random, sys, time
from kataribe.lore.engine import ScanInput, activate_entries
from kataribe.lore.model import Lorebook, LoreEntry, WorldInfoSettings
from kataribe.lore.timed import LoreTimedState
keys, text = json.loads(sys.stdin.read())
times = []
for key in keys:
    bare = LoreEntry(uid=2, keys=[key[1:-1]], use_regex=True)  # V3's use_regex form of the same pattern
    book = Lorebook(name="b", entries=[LoreEntry(uid=1, keys=[key]), bare])
    start = time.perf_counter()
    activate_entries([book], ScanInput(messages=[text], turn=1), WorldInfoSettings(), state=LoreTimedState(),
                     count_tokens=len, max_context=8192, rng=random.Random(0))
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def test_every_hostile_pattern_of_the_issue_scans_within_a_bound() -> None:
    # in a child process: a pattern that backtracks holds the GIL, so a regression must not hang pytest
    keys = [f"/{p}/" for p in HOSTILE]
    done = subprocess.run(
        [sys.executable, "-c", SCAN_IN_CHILD],
        input=json.dumps([keys, HOSTILE_TEXT]),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    times = json.loads(done.stdout)
    assert len(times) == len(HOSTILE)
    for pattern, seconds in zip(HOSTILE, times, strict=True):
        assert seconds < 0.5, f"{pattern} took {seconds:.2f} s"


def test_hostile_patterns_on_re2_still_match_what_they_describe() -> None:
    assert [a.entry.uid for a in fire([LoreEntry(uid=1, keys=[r"/(.|\s)*QQQ/"])], "aa  a QQQ").entries] == [1]
    assert [a.entry.uid for a in fire([LoreEntry(uid=1, keys=["/(a|aa)+$/"])], "baaaa").entries] == [1]
    assert [a.entry.uid for a in fire([LoreEntry(uid=1, keys=["/(a?){30}a{30}$/"])], "a" * 30).entries] == [1]


def test_a_pattern_too_large_for_linear_time_is_refused_with_a_reason() -> None:
    result = fire([LoreEntry(uid=7, keys=["/(a{1,100}){1,100}$/"])], "a" * 50)
    assert result.entries == []
    [skip] = result.skipped
    assert skip.reason is SkipReason.REGEX_KEY
    assert "(a{1,100}){1,100}" in skip.detail and "linear time" in skip.detail
    check = check_key("/(a{1,100}){1,100}$/")
    assert check.refused is not None and "linear time" in check.refused


def test_lookaround_and_backreferences_still_work_with_a_time_limit() -> None:
    entries = [
        LoreEntry(uid="behind", keys=["/(?<=red )dragon/"]),
        LoreEntry(uid="ahead", keys=["/dragon(?! slayer)/"]),
        LoreEntry(uid="backref", keys=[r"/\b(\w+) \1\b/"]),
        LoreEntry(uid="named", keys=[r"/(?<q>['\x22]).+\k<q>/"]),
    ]
    fired = sorted(str(a.entry.uid) for a in fire(entries, 'a red dragon said "hi" and so so').entries)
    assert fired == ["ahead", "backref", "behind", "named"]
    assert sorted(str(a.entry.uid) for a in fire(entries, "the blue dragon slayer").entries) == []
    assert check_key("/(?<=red )dragon/").time_limited
    assert not check_key("/(.|\\s)*QQQ/").time_limited


def test_a_backtracking_key_that_runs_too_long_is_stopped_and_reported() -> None:
    entries = [LoreEntry(uid=1, keys=["/(?=a)(a|aa)+$/"]), LoreEntry(uid=2, keys=["aaaa"])]
    start = time.perf_counter()
    result = fire(entries, "a" * 60 + "!")
    elapsed = time.perf_counter() - start
    assert [a.entry.uid for a in result.entries] == [2]
    [skip] = result.skipped
    assert skip.entry.uid == 1 and skip.reason is SkipReason.REGEX_KEY
    assert "stopped after" in skip.detail
    assert elapsed < 1.0


def test_many_backtracking_keys_share_one_budget_per_scan() -> None:
    entries = [LoreEntry(uid=i, keys=[f"/(?=a)(a|aa)+{'b' * i}$/"]) for i in range(60)]
    start = time.perf_counter()
    result = fire(entries, "a" * 60 + "!")
    elapsed = time.perf_counter() - start
    assert result.entries == []
    assert len(result.skipped) == 60
    assert any("used up" in s.detail for s in result.skipped)
    # the budget, plus one search that may overrun its timeout on a busy machine
    assert elapsed < SCAN_BUDGET_S * 4, elapsed


def test_an_entry_that_fires_by_another_key_says_which_key_was_not_used() -> None:
    entry = LoreEntry(uid=1, keys=["/(a{1,100}){1,100}$/", "castle"])
    [fired] = fire([entry], "the castle").entries
    assert fired.reason.startswith("key 'castle'")
    assert "not used: key '/(a{1,100}){1,100}$/' cannot be run in linear time" in fired.reason


@pytest.mark.parametrize(
    ("key", "text", "fires"),
    [
        (r"/a\sb/", "a\u3000b", True),  # JavaScript's \s is Unicode white space (the ideographic space)
        (r"/a\Sb/", "a\u3000b", False),
        ("/a.b/", "a\rb", False),  # . stops at \r, \u2028 and \u2029 in JavaScript
        ("/a.b/s", "a\rb", True),
        ("/end$/", "the end\nmore", False),
        ("/end$/m", "the end\nmore", True),
        (r"/\u3042/", "あ", True),
        (r"/\u{1F600}/u", "😀", True),
        (r"/\cI/", "a\tb", True),
        ("/[^]x/", "\nx", True),
        ("/[]x/", "x", False),  # JavaScript's empty class matches nothing
        (r"/a[\s]x/", "a\u3000x", True),
        ("/dragon/y", "a dragon", False),
        ("/Dragon/i", "DRAGON", True),
    ],
)
def test_javascript_regex_semantics_are_kept(key: str, text: str, fires: bool) -> None:
    assert bool(fire([LoreEntry(uid=1, keys=[key])], text).entries) is fires, key


def test_check_key_explains_invalid_and_harmless_keys() -> None:
    assert check_key("/([a-z]/").refused is not None
    assert "not a valid regular expression" in str(check_key("/([a-z]/").refused)
    assert check_key("/dra(g|k)on/i").refused is None
    assert check_key("plain words").refused is None
    # a V3 bare pattern that is not valid is matched as text, as SillyTavern does: nothing to refuse
    assert check_key("smile :)", use_regex=True).refused is None
    assert check_key("(a{1,100}){1,100}", use_regex=True).refused is not None
    assert check_key("/" + "a" * 1001 + "/").refused == "the pattern is longer than 1000 characters"
