"""docs/sampling.md says what the code does: its vectors and its reference implementation."""
from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inspection import sampling

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "sampling.md"


def _block(name: str, language: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name}:begin -->\s*```{language}\n(.*?)```\s*<!-- {name}:end -->",
                      text, re.S)
    assert match, f"docs/sampling.md has no {name} block"
    return match.group(1)


def _vectors() -> list[dict]:
    return json.loads(_block("vectors", "json"))


def _reference():
    namespace: dict = {}
    exec(compile(_block("reference", "python"), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace["draw"]


def test_the_documented_vectors_are_the_ones_the_code_generates():
    generated = [{"name": v.name, "draw_id": v.draw_id, "entropy": v.entropy, "frame": v.frame,
                  "expected": v.expected} for v in sampling.documented_vectors()]
    assert _vectors() == generated


def test_the_vectors_cover_odd_one_empty_full_coverage_a_share_and_both_household_cases():
    expected = [v["expected"] for v in _vectors()]
    rules = [v["frame"]["rule"] for v in _vectors()]
    assert {"R1", "R2", "R3"} <= set(rules)
    assert any("share" in v["frame"] for v in _vectors())
    assert any(r == "R2" and "share" not in v["frame"] for r, v in zip(rules, _vectors(), strict=True))
    assert any(e["frame_size"] % 2 == 1 and e["frame_size"] > 1 for e in expected)
    assert any(e["frame_size"] == 1 for e in expected)
    assert any(e["no_eligible_project"] for e in expected)
    assert any(e["insufficient_sample"] for e in expected)
    assert any(e["township"] and not e["insufficient_sample"] for e in expected)


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_each_vector_recomputes_from_its_inputs(vector):
    frame = sampling.frame_from_object(vector["frame"])
    expected = vector["expected"]
    canonical = expected["frame_canonical_json"]
    assert json.loads(canonical) == vector["frame"]
    assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == expected["frame_digest"]
    result = sampling.draw_stratum(frame, draw_id=vector["draw_id"], entropy=vector["entropy"])
    for field, value in result.to_object().items():
        if field in expected:
            assert value == expected[field], field
    if "key_utf8" in expected:
        key = expected["key_utf8"].encode("utf-8")
        assert key == sampling.draw_key(vector["draw_id"], frame.stratum, frame.digest,
                                        vector["entropy"])
        assert hashlib.sha256(key + b"|0").hexdigest() == expected["first_pick_sha256"]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_the_reference_implementation_in_the_doc_reproduces_each_vector(vector):
    result = _reference()(vector["draw_id"], vector["entropy"], vector["frame"])
    expected = vector["expected"]
    assert result["frame_digest"] == expected["frame_digest"]
    assert result["picks"] == expected["picks"]
    assert result["replacements"] == expected["replacements"]
    assert result.get("township") == expected["township"]


@settings(max_examples=100, deadline=None)
@given(items=st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=50),
       townships=st.dictionaries(st.text(alphabet="凤凰泽林镇杜山街道", min_size=1, max_size=4),
                                 st.integers(0, 3), max_size=6),
       rule=st.sampled_from(["R1", "R2", "R3"]), entropy=st.text(min_size=1, max_size=20),
       share=st.tuples(st.integers(1, 7), st.integers(1, 7)).map(lambda t: Fraction(min(t), max(t))),
       quota=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_the_reference_implementation_agrees_with_the_code_on_random_frames(items, townships,
                                                                            rule, entropy, share,
                                                                            quota):
    if rule == "R3":
        frame = sampling.adaptation_frame("echeng", {
            t: [f"{t}-{k}" for k in range(count)] for t, count in townships.items()},
            project_type="home_adaptation", min_households=quota[0],
            households_per_township=quota[1])
    elif rule == "R2":
        frame = sampling.facility_frame("echeng", "canteen", sampling.Rule.SHARE, items,
                                        share=share)
    else:
        frame = sampling.facility_frame("echeng", "canteen", sampling.Rule(rule), items)
    code = sampling.draw_stratum(frame, draw_id="d-1", entropy=entropy)
    reference = _reference()("d-1", entropy, frame.frame_object())
    assert (reference["picks"], reference["replacements"]) == (list(code.picks),
                                                               list(code.replacements))
    assert reference["frame_digest"] == code.frame_digest
    assert reference.get("township") == code.township
