"""The browser app's strings: every English string has a Japanese one and the other way round, with the
same placeholders, and every key the code asks for exists (no key shown raw on the screen)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "src" / "kataribe" / "web" / "static"
PAIR = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"')
PLACEHOLDER = re.compile(r"\{(\w+)\}")
USED = re.compile(r'\bt\(\s*"([A-Za-z0-9_.]+)"')
STATIC_ATTR = re.compile(r'data-i18n(?:-[a-z]+)?="([A-Za-z0-9_.]+)"')
CALL = re.compile(r"^addMessages\(\{", re.M)
SCRIPTS = sorted((STATIC / "js").rglob("*.js"))


def page_messages(source: str) -> dict[str, dict[str, str]]:
    """The en and ja tables of a page's ``addMessages({ en: {...}, ja: {...} })``."""
    found = CALL.search(source)
    if found is None:
        return {}
    start = found.start()
    block = source[start : source.index("\n});", start)]
    en, ja = block.index("en: {"), block.index("ja: {")
    first, second = sorted([("en", en), ("ja", ja)], key=lambda item: item[1])
    parts = {first[0]: block[first[1] : second[1]], second[0]: block[second[1] :]}
    return {lang: {k: json.loads(f'"{v}"') for k, v in PAIR.findall(text)} for lang, text in parts.items()}


def shared(lang: str) -> dict[str, str]:
    return dict(json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8")))


def all_messages() -> dict[str, dict[str, str]]:
    tables = {lang: shared(lang) for lang in ("en", "ja")}
    for script in SCRIPTS:
        for lang, table in page_messages(script.read_text("utf-8")).items():
            tables[lang].update(table)
    return tables


def test_the_shared_tables_have_the_same_keys_and_placeholders() -> None:
    en, ja = shared("en"), shared("ja")
    assert set(en) == set(ja), {"only in en": set(en) - set(ja), "only in ja": set(ja) - set(en)}
    for key in en:
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(ja[key])), key


PAGES = [script for script in SCRIPTS if CALL.search(script.read_text("utf-8"))]


@pytest.mark.parametrize("script", PAGES, ids=lambda script: script.name)
def test_each_pages_own_strings_come_in_both_languages(script: Path) -> None:
    tables = page_messages(script.read_text("utf-8"))
    en, ja = tables["en"], tables["ja"]
    assert en, f"no strings read from {script.name}"
    assert set(en) == set(ja), {"only in en": set(en) - set(ja), "only in ja": set(ja) - set(en)}
    for key in en:
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(ja[key])), key


def test_every_key_the_code_and_the_page_ask_for_exists() -> None:
    known = all_messages()["en"]
    used = {key for script in SCRIPTS for key in USED.findall(script.read_text("utf-8"))}
    for html in sorted(STATIC.glob("*.html")):  # the app and the log-in page
        used |= set(STATIC_ATTR.findall(html.read_text("utf-8")))
    assert len(used) > 100  # the patterns still find the calls
    assert sorted(used - set(known)) == []
