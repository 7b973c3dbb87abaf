"""PhraseGuard: holding back text that may become a banned phrase, and where to step back to."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.engine.bans import PhraseGuard, fold


def test_text_is_released_until_it_could_start_a_banned_phrase() -> None:
    guard = PhraseGuard(["shivers down"])
    assert guard.push("A chill").released == "A chill"
    assert guard.push(" sent").released == " sent"
    held = guard.push(" shi")  # could be "shivers down": the whole token waits
    assert held.released == "" and held.rollback_to is None
    assert guard.push("vers").released == ""
    assert guard.push(" down").rollback_to == 2  # back to the token " shi"


def test_text_that_stops_looking_like_a_phrase_is_released_whole() -> None:
    guard = PhraseGuard(["shivers down"])
    guard.push("A")
    assert guard.push(" shi").released == ""
    assert guard.push("ny coin").released == " shiny coin"
    assert guard.flush() == ""


def test_matching_ignores_case_and_keeps_positions_for_any_script() -> None:
    guard = PhraseGuard(["Ministrations"])
    guard.push("Her ")
    assert guard.push("MINISTRATIONS").rollback_to == 1
    assert fold("İSTANBUL ministrations").endswith("ministrations")
    assert len(fold("İ")) == 1  # a character whose lower case is two characters stays one


def test_a_character_whose_bytes_came_in_several_tokens_is_stepped_back_whole() -> None:
    guard = PhraseGuard(["アプリ"])
    guard.push("、")
    assert guard.push("").released == ""  # first bytes of "ア": nothing to show yet
    step = guard.push("アプ")
    assert step.released == "" and step.rollback_to is None
    assert guard.push("リ").rollback_to == 1  # back to the token that began "ア", not the one after


def test_after_a_rollback_the_guard_goes_on_from_the_kept_text() -> None:
    guard = PhraseGuard(["paris"])
    assert guard.push(" The capital is").released == " The capital is"
    assert guard.push(" Par").released == ""
    assert guard.push("is").rollback_to == 1
    guard.rollback(1)
    assert guard.push(" Lyon").released == " Lyon"
    assert guard.flush() == ""


def test_giving_up_releases_what_was_held() -> None:
    guard = PhraseGuard(["paris"])
    guard.push(" in")
    guard.push(" Par")
    step = guard.push("is")
    assert step.rollback_to == 1
    assert guard.give_up() == " Paris"
    assert guard.push(" again Paris").released == " again Paris"


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(["a", "b", "ab", "ba", "", "c", "A", "B", "x"]), max_size=30),
    phrases=st.lists(st.text(alphabet="abAB", min_size=1, max_size=3), min_size=1, max_size=3),
)
def test_no_banned_phrase_is_ever_released(pieces: list[str], phrases: list[str]) -> None:
    """An engine stand-in: on a rollback, the banned token is replaced by "x", which no phrase has."""
    guard = PhraseGuard(phrases)
    kept: list[str] = []
    released = ""
    queue = list(pieces)
    steps = 0
    while queue and steps < 500:
        steps += 1
        piece = queue.pop(0)
        kept.append(piece)
        step = guard.push(piece)
        if step.rollback_to is not None:
            guard.rollback(step.rollback_to)
            del kept[step.rollback_to :]
            queue.insert(0, "x")
            continue
        released += step.released
        assert "".join(kept).startswith(released)
    released += guard.flush()
    assert released == "".join(kept)
    assert not any(fold(p) in fold(released) for p in phrases)
