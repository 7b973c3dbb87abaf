"""AbortFlag: a byte that llama.cpp's compute threads poll to stop a decode, read without the GIL."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

import llama_cpp


def _c_strlen() -> Any | None:
    try:
        libc = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(ctypes.util.find_library("c"))
        return libc.strlen
    except (OSError, AttributeError, TypeError):
        return None


class AbortFlag:
    """Cancels a running ``llama_decode`` (prompt processing) from another thread.

    ggml calls the abort callback between graph nodes, thousands of times per batch. A Python
    callback would take the GIL each time and stall behind the event loop; instead the callback
    is the C library's ``strlen`` pointed at a two-byte buffer: it returns 1 (abort) once the
    first byte is set and 0 otherwise, and never touches Python. Where no C library can be found
    a Python callback does the same, slower.
    """

    def __init__(self) -> None:
        self._buf = ctypes.create_string_buffer(2)
        self.data = ctypes.cast(self._buf, ctypes.c_void_p)
        strlen = _c_strlen()
        if strlen is not None:
            self.callback = ctypes.cast(strlen, llama_cpp.ggml_abort_callback)
        else:
            self.callback = llama_cpp.ggml_abort_callback(lambda _data: self.is_set())

    def set(self) -> None:
        self._buf[0] = b"\x01"

    def clear(self) -> None:
        self._buf[0] = b"\x00"

    def is_set(self) -> bool:
        return self._buf[0] != b"\x00"

    def install(self, ctx: Any) -> None:
        llama_cpp.llama_set_abort_callback(ctx, self.callback, self.data)

    @staticmethod
    def uninstall(ctx: Any) -> None:
        llama_cpp.llama_set_abort_callback(ctx, llama_cpp.ggml_abort_callback(), None)  # NULL: none
