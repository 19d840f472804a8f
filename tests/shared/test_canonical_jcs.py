"""Our canonical JSON is RFC 8785 (JCS), checked against the `rfc8785` package as an oracle; the
two inputs where they would differ are refused when an event is appended."""
from __future__ import annotations

import uuid

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canonical import MAX_SAFE_INTEGER, CanonicalJsonError, canonical_json
from shared.messages import NewEvent

unit = pytest.mark.unit

_any_text = st.text(st.characters(codec="utf-8"), max_size=8)
_bmp_text = st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF), max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | _any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_bmp_text, inner, max_size=4),
    max_leaves=25)


@unit
@settings(max_examples=400, deadline=None)
@given(_values)
def test_every_value_we_accept_encodes_exactly_as_jcs(value):
    assert canonical_json(value) == rfc8785.dumps(value)


@unit
def test_keys_that_jcs_orders_by_utf16_units_differ_from_code_point_order():
    """Why non-BMP keys are refused: U+1F600 sorts after U+FF00 by code point, before it in UTF-16."""
    value = {"\U0001F600": 1, "\uFF00": 2}
    ours = b'{"\xef\xbc\x80":2,"\xf0\x9f\x98\x80":1}'
    assert rfc8785.dumps(value) != ours
    with pytest.raises(CanonicalJsonError, match="beyond U\\+FFFF"):
        canonical_json(value)
    assert canonical_json({"text": "\U0001F600"}) == rfc8785.dumps({"text": "\U0001F600"})


@unit
@pytest.mark.parametrize("number", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2**64])
def test_integers_jcs_would_round_are_refused(number):
    with pytest.raises(CanonicalJsonError, match="2\\^53"):
        canonical_json({"amount": number})
    assert canonical_json({"amount": MAX_SAFE_INTEGER}) == rfc8785.dumps({"amount": MAX_SAFE_INTEGER})


@unit
def test_floats_are_refused_with_the_path_to_them():
    with pytest.raises(CanonicalJsonError, match=r"\$\.a\[1\]"):
        canonical_json({"a": [1, 2.5]})


@pytest.mark.integration
async def test_an_event_with_a_huge_integer_is_refused_at_append_and_nothing_is_stored(pg_store):
    event_id = uuid.uuid4()
    bad = NewEvent("example-1", event_id, "example.Happened", 1, {"n": 2**60},
                   {"event_id": str(event_id), "event_type": "example.Happened", "schema_version": 1})
    with pytest.raises(CanonicalJsonError):
        await pg_store.append([bad])
    assert await pg_store.pool.fetchval("SELECT count(*) FROM es.events") == 0
