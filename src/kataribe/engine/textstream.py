"""Exact text streaming: incremental UTF-8 decoding and stop strings across token boundaries."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

REPLACEMENT = "\ufffd"


class Utf8StreamDecoder:
    """Turns token byte pieces into text without splitting or dropping multi-byte characters.

    A character whose bytes are spread over several tokens is emitted once, whole, when its
    last byte arrives. Bytes that can never form valid UTF-8 become U+FFFD instead of
    vanishing, so nothing the model produced is silently lost.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece, final=False)

    def flush(self) -> str:
        """Return whatever is still buffered (an incomplete character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)

    def drop_incomplete(self) -> int:
        """End a stream that was cut short (max_tokens, a full context, a cancel): the bytes of a
        character whose rest never came are dropped, not shown as U+FFFD. Returns how many."""
        dropped = self.pending_bytes
        self._decoder.reset()
        return dropped

    @property
    def pending_bytes(self) -> int:
        return len(self._decoder.getstate()[0])


class ReplacementTailHold:
    """Holds back U+FFFD characters at the end of text that arrives already decoded (a remote
    server's stream), so that a reply cut by max_tokens can end without the half character the
    server turned into U+FFFD, while streamed and non-streamed text stay the same."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        kept = text.rstrip(REPLACEMENT)
        self._held = text[len(kept) :]
        return kept

    def finish(self, *, cut: bool) -> str:
        """The held tail: dropped when the reply was cut short, else released (real U+FFFDs)."""
        out, self._held = ("" if cut else self._held), ""
        return out


@dataclass
class StopScan:
    """What a piece of text did to the stream: text safe to emit, and whether a stop was hit."""

    text: str
    stopped: bool = False
    stop: str | None = None


class StopStringFilter:
    """Holds back text that might be the start of a stop string; cuts the stream at a full match.

    Text is released only once it can no longer be part of a stop string, so a stop string
    split over several tokens never leaks, not even partially.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in dict.fromkeys(stops) if s]
        self._held = ""
        self._done = False

    @property
    def held(self) -> str:
        return self._held

    def feed(self, text: str) -> StopScan:
        if self._done:
            return StopScan("", stopped=True)
        if not self._stops:
            return StopScan(text)
        buf = self._held + text
        first_at = -1
        first_stop: str | None = None
        for stop in self._stops:
            at = buf.find(stop)
            if at != -1 and (first_at == -1 or at < first_at):
                first_at, first_stop = at, stop
        if first_stop is not None:
            self._done = True
            self._held = ""
            return StopScan(buf[:first_at], stopped=True, stop=first_stop)
        keep = self._partial_suffix_len(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return StopScan(buf[: len(buf) - keep])

    def flush(self) -> str:
        """End of stream without a stop: the held text was not a stop string after all."""
        out, self._held = self._held, ""
        return out

    def _partial_suffix_len(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:n]):
                    best = n
                    break
        return best
