"""Chat variable macros ({{setvar}}, {{addvar}}, {{getvar}}...) and the JavaScript number rules they use."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal

MAX_VARIABLE_CHARS = 1_000_000

_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_RADIX = re.compile(r"0([xXoObB])([0-9a-fA-F]+)")

# A variable macro reads or changes one store (chat-local or global) given the macro's arguments; it
# returns the replacement text, or None to leave the macro as written.
VariableMacro = Callable[[dict[str, str], list[str]], str | None]


def js_number(text: str) -> float | None:
    """JavaScript ``Number(text)``: None where JS gives NaN (blank text is 0, as in JS)."""
    value = text.strip()
    if not value:
        return 0.0
    if _JS_DECIMAL.fullmatch(value):
        return float(value)
    if value in ("Infinity", "+Infinity", "-Infinity"):
        return -math.inf if value.startswith("-") else math.inf
    radix = _JS_RADIX.fullmatch(value)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
        try:
            return float(int(radix.group(2), base))
        except ValueError:
            return None
        except OverflowError:
            return math.inf
    return None


def format_js_number(value: float) -> str:
    """JavaScript ``String(number)``: ``5`` not ``5.0``, ``1e+21``, ``0.000001``, ``1e-7``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    shortest = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, shortest.digits))
    exponent = int(shortest.exponent) + len(digits) - len(digits.rstrip("0"))
    digits = digits.rstrip("0")
    k, n = len(digits), len(digits) + exponent
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
        body = f"{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return ("-" if value < 0 else "") + body


def _read_variable(store: dict[str, str], name: str) -> str:
    value = store.get(name, "")
    number = js_number(value) if value else None
    return format_js_number(number) if number is not None else value


def _add_to_variable(store: dict[str, str], name: str, value: str) -> str | None:
    """ST's addvar: numeric add, array push for a JSON array, otherwise string append."""
    current_text = store.get(name, "")
    current_number = js_number(current_text) if current_text else 0.0
    if current_number is None and current_text.lstrip().startswith("["):
        try:
            parsed = json.loads(current_text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            parsed.append(value)
            return _store(store, name, json.dumps(parsed, ensure_ascii=False, separators=(",", ":")))
    increment = js_number(value)
    if increment is None or current_number is None:
        # JS `String(current || '') + value`: a zero or empty current value contributes nothing
        prefix = current_text if current_number is None else format_js_number(current_number)
        return _store(store, name, ("" if current_number == 0 else prefix) + value)
    total = current_number + increment
    return "" if math.isnan(total) else _store(store, name, format_js_number(total))


def _delete_variable(store: dict[str, str], name: str) -> str:
    store.pop(name, None)
    return ""


def _reject_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _store(store: dict[str, str], name: str, value: str) -> str | None:
    if len(value) > MAX_VARIABLE_CHARS:
        return None
    store[name] = value
    return value


def _set_var(store: dict[str, str], args: list[str]) -> str | None:
    if len(args) < 2:
        return None
    stored = _store(store, args[0], "::".join(args[1:]))
    return None if stored is None else ""


def _add_var(store: dict[str, str], args: list[str]) -> str | None:
    if len(args) < 2:
        return None
    added = _add_to_variable(store, args[0], "::".join(args[1:]))
    return None if added is None else ""


def _named(action: Callable[[dict[str, str], str], str | None]) -> VariableMacro:
    return lambda store, args: action(store, "::".join(args)) if args else None


VARIABLE_MACROS: dict[str, VariableMacro] = {
    "setvar": _set_var,
    "addvar": _add_var,
    "getvar": _named(_read_variable),
    "incvar": _named(lambda store, name: _add_to_variable(store, name, "1")),
    "decvar": _named(lambda store, name: _add_to_variable(store, name, "-1")),
    "hasvar": _named(lambda store, name: "true" if name in store else "false"),
    "deletevar": _named(_delete_variable),
}
GLOBAL_VARIABLE_MACROS: dict[str, VariableMacro] = {
    name.replace("var", "globalvar"): macro for name, macro in VARIABLE_MACROS.items()
}
