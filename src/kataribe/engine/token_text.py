"""The bytes and text of a model's tokens (cached per token), and a sampled token's log-probability
with its most likely alternatives, read from the context's last logits."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np

from kataribe.engine.base import TokenLogprob


class TokenText:
    """Token ids to bytes through the model's vocabulary, each piece looked up once."""

    def __init__(self, vocab: Any, n_vocab: int) -> None:
        self._vocab = vocab
        self.n_vocab = n_vocab
        self._cache: dict[tuple[int, bool], bytes] = {}

    def piece(self, token: int, special: bool) -> bytes:
        key = (token, special)
        piece = self._cache.get(key)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
            piece = buf.raw[:n]
            self._cache[key] = piece
        return piece

    def special_text(self, token: int) -> str:
        return self.piece(token, special=True).decode("utf-8", "replace") if token >= 0 else ""

    def logprob_entry(self, ctx: Any, token: int, top_n: int) -> TokenLogprob:
        """``token``'s log-probability under the last logits of ``ctx``, with the ``top_n`` best."""
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        top = np.max(logits)
        logz = float(top + np.log(np.sum(np.exp(logits - top))))

        def entry(tok: int) -> tuple[str, float, list[int]]:
            raw = self.piece(tok, special=True)
            return raw.decode("utf-8", "replace"), float(logits[tok]) - logz, list(raw)

        text, lp, raw = entry(token)
        alts: list[tuple[str, float, list[int]]] = []
        if top_n > 0:
            idx = np.argpartition(logits, -top_n)[-top_n:]
            idx = idx[np.argsort(-logits[idx])]
            alts = [entry(int(i)) for i in idx]
        return TokenLogprob(text, lp, raw, alts)
