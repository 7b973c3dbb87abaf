"""KvStateCache: saved llama KV states keyed by their token sequence, LRU within a byte budget."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class SavedState:
    tokens: tuple[int, ...]
    data: bytes

    @property
    def nbytes(self) -> int:
        return len(self.data) + 8 * len(self.tokens)


class KvStateCache:
    """Snapshots of the model's KV cache, one per conversation, found by longest token prefix.

    Several chats that interleave on one model each get their own snapshot, so coming back to
    a chat evaluates only what is new in it. The oldest-used snapshots go first when the byte
    budget is exceeded.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[int, SavedState] = OrderedDict()
        self._ids = count()
        self.used_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def best_match(self, tokens: Sequence[int]) -> tuple[int, SavedState] | None:
        """The snapshot sharing the longest prefix with ``tokens``, and that prefix's length."""
        best: tuple[int, SavedState] | None = None
        best_key = -1
        for key, state in self._entries.items():
            n = common_prefix_len(state.tokens, tokens)
            if n > 0 and (best is None or n > best[0]):
                best, best_key = (n, state), key
        if best is not None:
            self._entries.move_to_end(best_key)
        return best

    def covers(self, tokens: Sequence[int]) -> bool:
        """True when some snapshot already starts with all of ``tokens``."""
        return any(
            len(s.tokens) >= len(tokens) and common_prefix_len(s.tokens, tokens) == len(tokens)
            for s in self._entries.values()
        )

    def put(self, tokens: Sequence[int], data: bytes) -> bool:
        """Store a snapshot; snapshots it extends are dropped. False when it can never fit."""
        state = SavedState(tuple(tokens), data)
        if state.nbytes > self.budget_bytes:
            return False
        for key, old in list(self._entries.items()):
            if common_prefix_len(old.tokens, state.tokens) == len(old.tokens):
                self._remove(key)
        self._entries[next(self._ids)] = state
        self.used_bytes += state.nbytes
        while self.used_bytes > self.budget_bytes and self._entries:
            self._remove(next(iter(self._entries)))
        return True

    def clear(self) -> None:
        self._entries.clear()
        self.used_bytes = 0

    def _remove(self, key: int) -> None:
        self.used_bytes -= self._entries.pop(key).nbytes
