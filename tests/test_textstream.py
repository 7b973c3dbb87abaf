"""Exact streaming: UTF-8 split across tokens and stop strings across token boundaries."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from kataribe.engine.textstream import ReplacementTailHold, StopStringFilter, Utf8StreamDecoder


def decode_pieces(pieces: list[bytes]) -> tuple[list[str], str]:
    dec = Utf8StreamDecoder()
    emitted = [dec.feed(p) for p in pieces]
    return emitted, "".join(emitted) + dec.flush()


def test_each_character_of_japanese_split_byte_by_byte_arrives_whole_once() -> None:
    text = "語り部は日本語で話す"
    pieces = [bytes([b]) for b in text.encode()]
    emitted, total = decode_pieces(pieces)
    assert total == text
    # every emission is a whole character or nothing; never a partial or replacement character
    assert all(e == "" or e in text for e in emitted)
    assert "\ufffd" not in total
    assert sum(1 for e in emitted if e) == len(text)


def test_every_two_and_three_way_split_of_a_three_byte_character() -> None:
    raw = "語".encode()
    assert len(raw) == 3
    for cut in range(1, 3):
        emitted, total = decode_pieces([b"A" + raw[:cut], raw[cut:] + b"B"])
        assert emitted[0] == "A"  # nothing of the split character is emitted early
        assert total == "A語B"
    emitted, total = decode_pieces([raw[:1], raw[1:2], raw[2:]])
    assert emitted == ["", "", "語"]


def test_all_split_points_of_mixed_text_preserve_it() -> None:
    text = "かな漢字🎌emoji"
    raw = text.encode()
    for a, b in itertools.combinations(range(1, len(raw)), 2):
        _emitted, total = decode_pieces([raw[:a], raw[a:b], raw[b:]])
        assert total == text


def test_invalid_bytes_become_replacement_characters_not_silence() -> None:
    _emitted, total = decode_pieces([b"ok", b"\xff", b"\xe8\xaa"])  # junk, then a truncated character
    assert total == "ok\ufffd\ufffd"


@given(st.text(min_size=1, max_size=40), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_text_any_split_round_trips(text: str, cuts: list[int]) -> None:
    raw = text.encode()
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[i:j] for i, j in itertools.pairwise([0, *points, len(raw)])]
    _emitted, total = decode_pieces(pieces)
    assert total == text


def run_stops(pieces: list[str], stops: list[str]) -> tuple[list[str], str, str | None]:
    f = StopStringFilter(stops)
    out: list[str] = []
    for p in pieces:
        scan = f.feed(p)
        out.append(scan.text)
        if scan.stopped:
            return out, "".join(out), scan.stop
    out.append(f.flush())
    return out, "".join(out), None


def test_stop_string_spanning_three_tokens_is_cut_and_never_leaks() -> None:
    out, total, stop = run_stops(["Hello <", "|e", "nd|> more"], ["<|end|>"])
    assert total == "Hello "
    assert stop == "<|end|>"
    assert not any("<" in o for o in out)


def test_partial_stop_that_does_not_complete_is_released() -> None:
    out, total, stop = run_stops(["a <|e", "x tail"], ["<|end|>"])
    assert stop is None
    assert total == "a <|ex tail"
    assert out[0] == "a "  # held back while it could still become the stop string


def test_held_text_is_flushed_at_end_of_stream() -> None:
    _out, total, stop = run_stops(["ends with <|e"], ["<|end|>"])
    assert stop is None and total == "ends with <|e"


def test_earliest_of_several_stop_strings_wins() -> None:
    _out, total, stop = run_stops(["User: hi\n", "\nAssistant:"], ["Assistant:", "\n\n"])
    assert stop == "\n\n" and total == "User: hi"


def test_japanese_stop_string_across_tokens() -> None:
    _out, total, stop = run_stops(["太郎「こんに", "ちは」\n花", "子「"], ["\n花子「"])
    assert total == "太郎「こんにちは」" and stop == "\n花子「"


@given(
    st.text(alphabet="ab語\n<>|", max_size=30),
    st.text(alphabet="ab語\n<>|", min_size=1, max_size=4),
    st.lists(st.integers(min_value=0, max_value=40), max_size=6),
)
def test_stop_filter_matches_a_plain_find(text: str, stop: str, cuts: list[int]) -> None:
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[i:j] for i, j in itertools.pairwise([0, *points, len(text)])]
    _out, total, hit = run_stops(pieces, [stop])
    at = text.find(stop)
    if at == -1:
        assert total == text and hit is None
    else:
        assert total == text[:at] and hit == stop


def test_a_stream_cut_inside_a_character_drops_the_partial_bytes_not_shows_fffd() -> None:
    for cut in range(1, 4):  # 1, 2 or 3 of the emoji's 4 bytes arrived before max_tokens
        dec = Utf8StreamDecoder()
        raw = "語り🎌".encode()
        emitted = dec.feed(raw[: len(raw) - 4 + cut])
        assert dec.drop_incomplete() == cut
        assert emitted + dec.flush() == "語り"


def test_dropping_at_a_cut_keeps_invalid_bytes_in_the_middle_as_fffd() -> None:
    dec = Utf8StreamDecoder()
    text = dec.feed(b"a\xffb\xe8\xaaX") + dec.feed("語".encode()[:2])
    assert dec.drop_incomplete() == 2
    assert text + dec.flush() == "a\ufffdb\ufffdX"


def test_a_complete_stream_has_nothing_to_drop() -> None:
    dec = Utf8StreamDecoder()
    assert dec.feed("語り部".encode()) == "語り部"
    assert dec.drop_incomplete() == 0


@given(st.text(min_size=1, max_size=30), st.integers(min_value=0, max_value=200))
def test_any_cut_of_any_text_ends_in_a_whole_prefix_without_fffd(text: str, at: int) -> None:
    raw = text.encode()
    cut = at % (len(raw) + 1)
    dec = Utf8StreamDecoder()
    out = "".join(dec.feed(raw[i : i + 1]) for i in range(cut))
    dec.drop_incomplete()
    out += dec.flush()
    assert text.startswith(out)
    assert len(out.encode()) > cut - 4  # at most one partial character (< 4 bytes) is dropped


def test_replacement_tail_hold_drops_a_trailing_fffd_only_at_a_cut() -> None:
    hold = ReplacementTailHold()
    assert hold.feed("語り\ufffd") == "語り"
    assert hold.feed("\ufffd部") == "\ufffd\ufffd部"  # more text came: they were real
    assert hold.feed("x\ufffd") == "x"
    assert hold.finish(cut=True) == ""
    hold = ReplacementTailHold()
    assert hold.feed("end\ufffd") + hold.finish(cut=False) == "end\ufffd"
