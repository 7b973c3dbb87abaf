"""The fewest tokens a prompt can become, from its size in bytes, so that a prompt that cannot fit
the context is refused before it is tokenized (tokenizing 10 MB took 9 s and more), and a prompt
that will be cut from the start is cut to a sure tail first.

No token's text is longer than the vocabulary's longest piece, so a prompt of B bytes is at least
B / longest tokens. Tokenizers that normalize text (WordPiece, Unigram: NFKC can write three
bytes as one) get four times the room, and no character is counted above four bytes (an unknown
character can become a single token).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import llama_cpp

from kataribe.errors import PromptTooLong

_NORMALIZING = frozenset({llama_cpp.LLAMA_VOCAB_TYPE_WPM, llama_cpp.LLAMA_VOCAB_TYPE_UGM})


def longest_piece_bytes(piece_size: Callable[[int], int], n_vocab: int) -> int:
    """The longest token text in bytes, special tokens written out (what ``special=True`` parses)."""
    return max((piece_size(token) for token in range(n_vocab)), default=1)


def llama_piece_size(vocab: ctypes.c_void_p) -> Callable[[int], int]:
    """The byte length of one token's text in a llama.cpp vocabulary."""
    buf = ctypes.create_string_buffer(256)

    def size(token: int) -> int:
        n = int(llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True))
        return -n if n < 0 else n

    return size


class PromptBound:
    """Checks a prompt's bytes against the context; the vocabulary is measured once, when first needed."""

    def __init__(self, measure: Callable[[], int], *, normalizing: bool) -> None:
        self._measure = measure
        self._normalizing = normalizing
        self._bytes_per_token: int | None = None

    @classmethod
    def of_llama(cls, vocab: ctypes.c_void_p, n_vocab: int) -> PromptBound:
        normalizing = llama_cpp.llama_vocab_type(vocab) in _NORMALIZING
        return cls(lambda: longest_piece_bytes(llama_piece_size(vocab), n_vocab), normalizing=normalizing)

    def _per_token(self) -> int:
        if self._bytes_per_token is None:
            self._bytes_per_token = max(self._measure(), 4) * (4 if self._normalizing else 1)
        return self._bytes_per_token

    def tail(self, text: str, *, tokens: int) -> str:
        """The end of ``text`` that surely holds its last ``tokens`` tokens, and some to spare.

        A prompt cut from the start keeps only its newest tokens, whose bytes are at most
        ``tokens`` times the longest piece: there is no need to tokenize more than that. The spare
        tokens keep the cut away from them (a word cut in two tokenizes differently).
        """
        if len(text) <= tokens:  # fewer characters than tokens kept: nothing to cut
            return text
        keep = (tokens + 16) * self._per_token()
        data = text.encode("utf-8", "surrogatepass")
        if len(data) <= keep:
            return text
        return data[-keep:].decode("utf-8", "ignore")  # a character cut at the start is dropped

    def check(self, text: str, *, reserve: int, n_ctx: int) -> None:
        """Raises PromptTooLong when ``text`` plus ``reserve`` tokens cannot fit ``n_ctx``."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size + reserve <= n_ctx:  # even one byte per token fits: no need to measure anything
            return
        fewest = -(-size // self._per_token())
        if fewest + reserve > n_ctx:
            raise PromptTooLong(size, fewest, n_ctx, reserve=reserve)
