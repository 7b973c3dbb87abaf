"""Banned phrases (KoboldCpp's ``banned_tokens`` / SillyTavern's "banned strings", the anti-slop list).

The generated text is held back while it could still become a banned phrase. When one appears,
the engine rolls the generation back to the token where the phrase began, bans that token at that
position and samples again. Nothing of a banned phrase is ever streamed. Matching ignores case.
Pure Python: the engine feeds it each token's text and does the rolling back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_PHRASES = 512
MAX_PHRASE_CHARS = 200


def fold(text: str) -> str:
    """Lower case, one character for one (so positions in the folded text are positions in ``text``)."""
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in text)


@dataclass(frozen=True, slots=True)
class GuardStep:
    """Text now safe to emit, or the index of the generated token to roll back to."""

    released: str = ""
    rollback_to: int | None = None


class PhraseGuard:
    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases = sorted({fold(p) for p in phrases if p}, key=len)
        self._text = ""
        self._folded = ""
        self._ends: list[int] = []  # the text's length after each generated token
        self._held = 0  # where the text not yet released starts (always a token boundary)
        self.active = bool(self.phrases)

    def push(self, text: str) -> GuardStep:
        """The next generated token's text (possibly empty: part of a multi-byte character)."""
        self._text += text
        self._folded += fold(text)
        self._ends.append(len(self._text))
        if not self.active:
            return GuardStep(self._release(len(self._text)))
        hits = [at for p in self.phrases if (at := self._folded.find(p, self._held)) >= 0]
        if hits:
            return GuardStep(rollback_to=self._token_at(min(hits)))
        start = self._held
        for at in range(self._held, len(self._folded)):
            tail = self._folded[at:]
            if any(p.startswith(tail) for p in self.phrases):
                start = self._token_start(self._token_at(at))
                break
        else:
            start = len(self._text)
        return GuardStep(self._release(start))

    def rollback(self, index: int) -> None:
        """Forget generated tokens from ``index`` on (they were all still held back)."""
        start = self._token_start(index)
        assert start >= self._held, "released text cannot be rolled back"
        self._text, self._folded, self._ends = self._text[:start], self._folded[:start], self._ends[:index]

    def give_up(self) -> str:
        """Stop banning (too many rollbacks): everything held back is released."""
        self.active = False
        return self._release(len(self._text))

    def flush(self) -> str:
        return self._release(len(self._text))

    def _release(self, upto: int) -> str:
        out, self._held = self._text[self._held : upto], max(self._held, upto)
        return out

    def _token_at(self, char: int) -> int:
        """The first token of those that produced the character at ``char`` (a character whose
        bytes came in several tokens starts at the first of them)."""
        index = next(i for i, end in enumerate(self._ends) if end > char)
        while index > 0 and self._token_start(index - 1) == self._ends[index - 1]:
            index -= 1  # a token that produced nothing yet: the first bytes of this token's character
        return index

    def _token_start(self, index: int) -> int:
        return self._ends[index - 1] if index > 0 else 0
