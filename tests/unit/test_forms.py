"""The form decoder against the standard library and Bolt: the same answer for every body."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body as bolt_parse_body

from bot.slack.forms import parse_body, parse_form, unquote_field

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "slack" / "payloads"
FORM = "application/x-www-form-urlencoded"

# The characters that steer decoding (escapes, separators, spaces, line ends), hex digits to
# make escapes of, and a few beyond ASCII. Half the texts are ASCII only (the fast path).
_ESCAPES = ["%25", "%3D", "%26", "%2B", "%C3%A9", "%e2%82", "%0a", "%zz", "%4"]
_TRICKY = st.sampled_from([*'%=&+;aF09 \t\r\n\\"{}\x00\x7f', *_ESCAPES])
_ASCII = st.lists(st.one_of(_TRICKY, st.characters(max_codepoint=127)), max_size=40)
_ANY = st.lists(st.one_of(_TRICKY, st.sampled_from("é€"), st.characters()), max_size=40)
_TEXT = st.one_of(_ASCII, _ANY).map("".join)


@settings(max_examples=600, deadline=None)
@given(_TEXT)
def test_a_field_decodes_as_urllib_decodes_it(text: str) -> None:
    """Any text, valid escapes or not, ASCII or not, decodes to what parse_qsl's unquote gives."""
    assert unquote_field(text) == urllib.parse.unquote(text.replace("+", " "))


@settings(max_examples=600, deadline=None)
@given(_TEXT)
def test_a_form_parses_as_parse_qsl_parses_it(text: str) -> None:
    """Any form text gives the dict Bolt builds from parse_qsl(keep_blank_values=True)."""
    assert parse_form(text) == dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_any_json_payload_round_trips_like_bolt(value: Any) -> None:
    """A payload field holding any JSON (quoted as Slack quotes it) reads back as Bolt reads it."""
    body = "payload=" + urllib.parse.quote_plus(json.dumps(value, ensure_ascii=False))
    assert parse_body(body, FORM) == bolt_parse_body(body, FORM) == value


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_slacks_own_samples_parse_as_bolt_parses_them(path: Path) -> None:
    """Each of Slack's sample payloads, as a form body, a payload field and JSON, matches Bolt."""
    sample = json.loads(path.read_text())
    bodies = [json.dumps(sample), "payload=" + urllib.parse.quote(json.dumps(sample))]
    if isinstance(sample, dict) and all(isinstance(v, str) for v in sample.values()):
        bodies.append(urllib.parse.urlencode(sample))
    for body in bodies:
        assert parse_body(body, FORM) == bolt_parse_body(body, FORM)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.form.txt")), ids=lambda p: p.name)
def test_slacks_own_form_bodies_parse_as_bolt_parses_them(path: Path) -> None:
    """Slack's sample slash command bodies give Bolt's dict of fields."""
    body = path.read_text().strip()
    assert parse_body(body, FORM) == bolt_parse_body(body, FORM) != {}


def test_bad_json_is_a_value_error_as_in_bolt() -> None:
    """A payload that is not JSON raises ValueError (json.JSONDecodeError), as Bolt's parser does."""
    with pytest.raises(ValueError):
        parse_body("payload=%7Bnot%20json", FORM)
    assert parse_body("", FORM) == {} and parse_body("payloads_here=1", FORM) == {}
