"""Lossless round trips: record how an imported object looked, and rebuild it on export.

A format describes its fields as flat paths (``("extensions", "depth")``). On import, the
known paths are decoded into the model and compared with what the model encodes back; only the
differences are kept in a ``SourceTrace``, and unknown paths go to ``extensions``. Exporting to
the same format replays the original field order and raw values while the model still encodes
the same values, so an untouched file comes back identical and an edited field shows the edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kataribe.lore.jsonvalues import copy_json, same_json
from kataribe.lore.model import Path, SourceTrace

Flat = dict[Path, Any]


@dataclass(frozen=True, slots=True)
class Layout:
    """How one format's object is laid out.

    ``nested`` containers are flattened one level; ``structural`` paths (the entries list) are
    rebuilt by the exporter and never recorded; ``name_of``/``path_of`` map unknown fields to
    ``extensions`` names and back.
    """

    format: str
    nested: frozenset[str]
    name_of: Callable[[Path], str]
    path_of: Callable[[str], Path]
    structural: frozenset[Path] = frozenset()


def flatten(obj: Mapping[str, Any], nested: frozenset[str]) -> Flat:
    flat: Flat = {}
    for key, value in obj.items():
        if key in nested and isinstance(value, dict):
            if not value:
                flat[(key,)] = {}  # an empty container is kept as written
            for sub, sub_value in value.items():
                flat[(key, sub)] = sub_value
        else:
            flat[(key,)] = value
    return flat


def unflatten(flat: Flat) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        if len(path) == 1:
            if isinstance(out.get(path[0]), dict) and isinstance(value, dict):
                out[path[0]] = {**value, **out[path[0]]}
            else:
                out[path[0]] = value
        else:
            container = out.get(path[0])
            if not isinstance(container, dict):
                container = out[path[0]] = {}
            container[path[1]] = value
    return out


def record(
    layout: Layout, raw: Flat, canonical: Flat, extensions: dict[str, Any]
) -> tuple[SourceTrace, dict[str, Any]]:
    """The trace of an imported object, and its unknown fields as extensions (added to the given)."""
    trace = SourceTrace(format=layout.format, order=list(raw))
    extensions = dict(extensions)
    for path, encoded in canonical.items():
        if path in layout.structural:
            continue
        if path in raw:
            if not same_json(raw[path], encoded):
                trace.kept[path] = (copy_json(raw[path]), copy_json(encoded))
        else:
            trace.omitted[path] = copy_json(encoded)
    for path, value in raw.items():
        if path in canonical or path in layout.structural:
            continue
        name = layout.name_of(path)
        if (len(path) == 1 and path[0] in layout.nested) or name in extensions:
            trace.verbatim[path] = copy_json(value)
        else:
            extensions[name] = copy_json(value)
    return trace, extensions


def rebuild(
    layout: Layout,
    canonical: Flat,
    extensions: Mapping[str, Any],
    trace: SourceTrace | None,
    *,
    drop_when_fresh: Iterable[Path] = (),
) -> dict[str, Any]:
    """The object to export: the original layout when ``trace`` is of this format, else a fresh one.

    A fresh export leaves out fields the model has no value for (``None``) and the paths in
    ``drop_when_fresh``; an unknown field never overrides a known one.
    """
    if trace is not None and trace.format != layout.format:
        trace = None
    out: Flat = {}
    placed: set[str] = set()
    if trace is not None:
        for path in trace.order:
            if path in canonical:
                kept = trace.kept.get(path)
                use_raw = kept is not None and same_json(kept[1], canonical[path])
                out[path] = copy_json(kept[0]) if use_raw and kept is not None else canonical[path]
            elif path in trace.verbatim:
                out[path] = copy_json(trace.verbatim[path])
            elif path not in layout.structural:
                name = layout.name_of(path)
                if name in extensions and name not in placed:
                    out[path] = copy_json(extensions[name])
                    placed.add(name)
    dropped = set(drop_when_fresh)
    for path, value in canonical.items():
        if path in out:
            continue
        if trace is not None and path in trace.omitted and same_json(trace.omitted[path], value):
            continue
        if trace is None and (value is None or path in dropped):
            continue
        out[path] = value
    for name, value in extensions.items():
        path = layout.path_of(name)
        if name in placed or path in out or path in canonical:
            continue
        out[path] = copy_json(value)
    return unflatten(out)
