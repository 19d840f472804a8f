"""The draw algorithm: sample sizes by rule, distinct members, determinism, sensitivity, no bias."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inspection import sampling
from services.inspection.sampling import FrameError, Rule

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=150, deadline=None)

draw_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
entropies = st.text(min_size=1, max_size=30)
# Ezhou 2024's R3 numbers; a frame always states its own (they come from the campaign file).
R3 = dict(project_type="home_adaptation", min_households=2, households_per_township=2)
project_ids = st.one_of(st.integers(0, 10**6).map(lambda n: f"P-{n}"),
                        st.text(alphabet="凤凰泽林镇ABC-123", min_size=1, max_size=6))


@st.composite
def facility_frames(draw, rule=Rule.SHARE, min_size=0, max_size=50):
    items = draw(st.lists(project_ids, min_size=min_size, max_size=max_size, unique=True))
    unit = draw(st.sampled_from(["echeng", "huarong", "liangzihu", "gedian", "linkong"]))
    return sampling.facility_frame(unit, "canteen" if rule is Rule.SHARE else "complex", rule,
                                   draw(st.permutations(items)))


@st.composite
def adaptation_frames(draw):
    names = draw(st.lists(st.sampled_from(["凤凰街道", "古楼街道", "泽林镇", "杜山镇", "新庙镇",
                                           "碧石镇", "汀祖镇"]), unique=True, max_size=7))
    counts = [draw(st.integers(0, 3)) for _ in names]
    townships = {name: [f"H-{name}-{k}" for k in range(count)]
                 for name, count in zip(names, counts, strict=True)}
    return sampling.adaptation_frame("echeng", townships, **R3), dict(zip(names, counts, strict=True))


def _flip_one_bit(text: str, position: int, bit: int) -> str:
    data = bytearray(text.encode("utf-8"))
    data[position % len(data)] ^= 1 << bit
    return data.decode("utf-8", errors="strict")


# --- R2 ----------------------------------------------------------------------------------------


@PROPERTY
@given(frame=facility_frames(), draw_id=draw_ids, entropy=entropies)
def test_half_rule_samples_ceil_half_of_distinct_frame_members(frame, draw_id, entropy):
    result = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    n = len(frame.items)
    assert result.sample_size == (n + 1) // 2 == len(result.picks)
    assert len(set(result.picks)) == len(result.picks)
    assert sorted(result.picks + result.replacements) == list(frame.items)
    assert result.no_eligible_project is (n == 0)


@pytest.mark.parametrize(("frame_size", "sample_size"),
                         [(0, 0), (1, 1), (2, 1), (3, 2), (5, 3), (9, 5), (10, 5), (49, 25)])
def test_half_rule_rounds_up_where_round_would_round_to_even(frame_size, sample_size):
    frame = sampling.facility_frame("echeng", "canteen", Rule.SHARE,
                                    [f"P-{k:02d}" for k in range(frame_size)])
    result = sampling.draw_stratum(frame, draw_id="d", entropy="e")
    assert result.sample_size == sample_size == len(result.picks)
    assert len(result.replacements) == frame_size - sample_size


shares = st.tuples(st.integers(1, 12), st.integers(1, 12)).map(lambda t: Fraction(min(t), max(t)))


@PROPERTY
@given(frame=facility_frames(), share=shares, draw_id=draw_ids, entropy=entropies)
def test_the_share_rule_samples_the_ceiling_of_the_frames_share(frame, share, draw_id, entropy):
    frame = sampling.facility_frame(frame.unit, frame.project_type, Rule.SHARE, frame.items,
                                    share=share)
    result = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    n = len(frame.items)
    # ⌈N·p/q⌉ as the smallest integer not below N·p/q, checked without the code's formula.
    assert result.sample_size * share.denominator >= n * share.numerator
    assert (result.sample_size - 1) * share.denominator < n * share.numerator or n == 0
    assert result.sample_size == len(result.picks)
    assert sorted(result.picks + result.replacements) == list(frame.items)


@pytest.mark.parametrize(("share", "frame_size", "sample_size"),
                         [((1, 3), 6, 2), ((1, 3), 7, 3), ((2, 3), 5, 4), ((3, 4), 1, 1),
                          ((1, 1), 4, 4), ((2, 4), 5, 3)])
def test_a_campaigns_share_is_applied_in_integers(share, frame_size, sample_size):
    frame = sampling.facility_frame("echeng", "canteen", Rule.SHARE,
                                    [f"P-{k:02d}" for k in range(frame_size)],
                                    share=Fraction(*share))
    assert sampling.draw_stratum(frame, draw_id="d", entropy="e").sample_size == sample_size


def test_a_share_is_recorded_in_the_frame_unless_it_is_one_half():
    items = ["P-1", "P-2", "P-3"]
    half = sampling.facility_frame("echeng", "canteen", Rule.SHARE, items)
    assert "share" not in half.frame_object()
    assert sampling.facility_frame("echeng", "canteen", Rule.SHARE, items,
                                   share=Fraction(2, 4)).digest == half.digest
    third = sampling.facility_frame("echeng", "canteen", Rule.SHARE, items, share=Fraction(1, 3))
    assert third.frame_object()["share"] == {"numerator": 1, "denominator": 3}
    assert third.digest != half.digest       # the share is frozen with the frame
    assert sampling.frame_from_object(third.frame_object()) == third


@pytest.mark.parametrize("share", [{"numerator": 1, "denominator": 2},
                                   {"numerator": 2, "denominator": 6},
                                   {"numerator": 3, "denominator": 2},
                                   {"numerator": 0, "denominator": 2},
                                   {"numerator": True, "denominator": 3},
                                   {"numerator": 1}])
def test_a_share_that_is_not_canonical_is_refused(share):
    obj = sampling.facility_frame("echeng", "canteen", Rule.SHARE, ["P-1"]).frame_object()
    obj["share"] = share
    with pytest.raises(FrameError):
        sampling.frame_from_object(obj)


def test_only_an_r2_frame_has_a_share():
    with pytest.raises(FrameError, match="only an R2"):
        sampling.facility_frame("echeng", "complex", Rule.FULL_COVERAGE, ["X-1"],
                                share=Fraction(1, 3))
    obj = sampling.facility_frame("echeng", "complex", Rule.FULL_COVERAGE, ["X-1"]).frame_object()
    obj["share"] = {"numerator": 1, "denominator": 3}
    with pytest.raises(FrameError, match="not those of rule R1"):
        sampling.frame_from_object(obj)


def test_empty_stratum_is_an_explicit_no_eligible_project_result():
    frame = sampling.facility_frame("linkong", "canteen", Rule.SHARE, [])
    result = sampling.draw_stratum(frame, draw_id="d", entropy="e")
    assert result.no_eligible_project and result.picks == () and result.sample_size == 0
    assert result.frame_digest == frame.digest


# --- R1 ----------------------------------------------------------------------------------------


@PROPERTY
@given(frame=facility_frames(rule=Rule.FULL_COVERAGE), entropy=entropies)
def test_full_coverage_takes_every_item_whatever_the_entropy(frame, entropy):
    result = sampling.draw_stratum(frame, draw_id="d", entropy=entropy)
    assert result.picks == frame.items and result.replacements == ()
    assert result.no_eligible_project is (not frame.items)


# --- R3 ----------------------------------------------------------------------------------------


@PROPERTY
@given(case=adaptation_frames(), draw_id=draw_ids, entropy=entropies)
def test_adaptation_draws_one_township_then_households_by_the_fallback_rules(case, draw_id, entropy):
    frame, counts = case
    result = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    townships = dict(frame.townships)
    if all(count == 0 for count in counts.values()):
        assert result.no_eligible_project and result.township is None and result.picks == ()
        return
    assert not result.no_eligible_project
    chosen = townships[result.township]
    assert sorted(result.picks + result.replacements) == list(chosen)
    assert len(set(result.picks)) == len(result.picks)
    if any(count >= 2 for count in counts.values()):
        assert counts[result.township] >= 2
        assert sorted(result.township_order) == sorted(t for t, k in counts.items() if k >= 2)
        assert result.sample_size == len(result.picks) == 2
        assert not result.insufficient_sample
    else:
        assert counts[result.township] == 1
        assert result.sample_size == len(result.picks) == 1
        assert result.insufficient_sample


def test_adaptation_with_a_larger_quota_flags_a_township_that_cannot_fill_it():
    frame = sampling.adaptation_frame("echeng", {"凤凰街道": ["H-1", "H-2"]},
                                      **{**R3, "households_per_township": 3})
    result = sampling.draw_stratum(frame, draw_id="d", entropy="e")
    assert result.sample_size == 2 and result.insufficient_sample


def test_adaptation_minimum_is_configurable():
    frame = sampling.adaptation_frame("echeng", {"凤凰街道": ["H-1", "H-2"], "泽林镇": ["Z-1", "Z-2", "Z-3"]},
                                      **{**R3, "min_households": 3})
    result = sampling.draw_stratum(frame, draw_id="d", entropy="e")
    assert result.township == "泽林镇" and result.township_order == ("泽林镇",)
    assert not result.insufficient_sample


def test_townships_without_households_are_not_part_of_the_frame():
    with_empty = sampling.adaptation_frame("echeng", {"凤凰街道": ["H-1"], "泽林镇": []}, **R3)
    without = sampling.adaptation_frame("echeng", {"凤凰街道": ["H-1"]}, **R3)
    assert with_empty.digest == without.digest


# --- the pick sequence -------------------------------------------------------------------------


@PROPERTY
@given(frame=facility_frames(), draw_id=draw_ids, entropy=entropies)
def test_same_inputs_give_the_same_picks(frame, draw_id, entropy):
    first = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    again = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    assert first == again


@PROPERTY
@given(frame=facility_frames(min_size=12), draw_id=draw_ids,
       entropy=st.text(alphabet="0123456789 3D福彩-:", min_size=1, max_size=30),
       position=st.integers(0, 200), bit=st.integers(0, 5))
def test_one_bit_of_entropy_changes_the_whole_order(frame, draw_id, entropy, position, bit):
    # Frames of >= 12 items: the chance that two keys give the same order is 1/12! < 3e-9.
    # The alphabet's ASCII characters stay valid single-byte UTF-8 when one of bits 0-5 flips.
    ascii_positions = [k for k, ch in enumerate(entropy.encode("utf-8")) if ch < 0x80]
    if not ascii_positions:
        entropy, ascii_positions = entropy + "0", [len(entropy.encode("utf-8"))]
    flipped = _flip_one_bit(entropy, ascii_positions[position % len(ascii_positions)], bit)
    assert flipped != entropy
    original = sampling.draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    changed = sampling.draw_stratum(frame, draw_id=draw_id, entropy=flipped)
    assert original.picks + original.replacements != changed.picks + changed.replacements


@PROPERTY
@given(frame=facility_frames(min_size=1), entropy=entropies)
def test_every_pick_hash_depends_on_the_entropy(frame, entropy):
    key = sampling.draw_key("d", frame.stratum, frame.digest, entropy)
    other = sampling.draw_key("d", frame.stratum, frame.digest, entropy + "!")
    first = sampling.permutation_trace(key, frame.items)
    second = sampling.permutation_trace(other, frame.items)
    assert all(a.digest != b.digest for a, b in zip(first, second, strict=True))


def test_pick_is_sha256_of_key_bar_index_mapped_onto_the_remaining_items():
    key = sampling.draw_key("d1", "echeng/canteen", "ab" * 32, "371")
    assert key == b"d1|echeng/canteen|" + b"ab" * 32 + b"|371"
    items = ["A", "B", "C", "D", "E"]
    remaining, expected = list(items), []
    for i in range(5):
        value = int.from_bytes(hashlib.sha256(key + b"|" + str(i).encode()).digest(), "big")
        expected.append(remaining.pop(value % len(remaining)))
    assert sampling.permute(key, items) == expected


def test_values_at_or_above_the_largest_multiple_are_rejected():
    space = 1 << 256
    assert space % 3 == 1  # so 2^256 - 1 is the first value to reject for m = 3
    assert sampling.acceptance_limit(3) == space - 1
    assert sampling.accepted_index(space - 1, 3) is None
    assert sampling.accepted_index(space - 2, 3) == (space - 2) % 3
    assert sampling.accepted_index(space - 1, 1) == 0  # m = 1 never rejects
    assert sampling.acceptance_limit(1 << 10) == space  # powers of two never reject


def test_a_rejected_attempt_rehashes_with_a_counter(monkeypatch):
    key = b"k"
    real = sampling._sha256
    seen = []

    def first_attempt_always_rejected(message: bytes) -> bytes:
        seen.append(message)
        return b"\xff" * 32 if message == b"k|0" else real(message)

    monkeypatch.setattr(sampling, "_sha256", first_attempt_always_rejected)
    trace = sampling.permutation_trace(key, ["A", "B", "C"])
    assert seen[:2] == [b"k|0", b"k|0|1"]
    assert trace[0].attempts == 2
    assert trace[0].index == int.from_bytes(real(b"k|0|1"), "big") % 3


def test_first_picks_are_spread_evenly_over_the_frame():
    # A chi-square sanity check over 5,000 fixed draw ids; deterministic, so it cannot flake.
    items = ["A", "B", "C", "D", "E"]
    counts = Counter(sampling.permute(sampling.draw_key(f"d{k}", "s", "0" * 64, "e"), items)[0]
                     for k in range(5000))
    expected = 1000
    chi_square = sum((counts[item] - expected) ** 2 / expected for item in items)
    assert chi_square < 18.47, counts  # p = 0.001 for 4 degrees of freedom


# --- frames ------------------------------------------------------------------------------------


def test_frame_digest_is_sha256_of_the_canonical_json_of_the_frame_object():
    frame = sampling.facility_frame("echeng", "canteen", Rule.SHARE, ["P-2", "P-1"],
                                    [sampling.Exclusion("P-9", "retired", "拆除")])
    obj = {"algorithm_version": "lookback-draw-v1", "excluded": [
        {"code": "retired", "detail": "拆除", "id": "P-9"}], "items": ["P-1", "P-2"],
        "project_type": "canteen", "rule": "R2", "unit": "echeng"}
    encoded = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert frame.frame_object() == obj
    assert frame.digest == hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@PROPERTY
@given(frame=facility_frames())
def test_frame_order_of_input_does_not_matter(frame):
    shuffled = sampling.facility_frame(frame.unit, frame.project_type, frame.rule,
                                       list(reversed(frame.items)))
    assert shuffled.digest == frame.digest
    assert sampling.frame_from_object(frame.frame_object()) == frame


def test_a_frame_refuses_duplicate_ids_and_the_key_separator():
    with pytest.raises(FrameError, match="duplicate"):
        sampling.facility_frame("echeng", "canteen", Rule.SHARE, ["P-1", "P-1"])
    with pytest.raises(FrameError, match="'\\|'"):
        sampling.facility_frame("ech|eng", "canteen", Rule.SHARE, ["P-1"])
    with pytest.raises(FrameError, match="two townships"):
        sampling.adaptation_frame("echeng", {"A": ["H-1"], "B": ["H-1"]}, **R3)
    with pytest.raises(FrameError):
        sampling.draw_key("draw|1", "s", "0" * 64, "e")


def test_an_unsorted_frame_object_is_refused_not_repaired():
    obj = sampling.facility_frame("echeng", "canteen", Rule.SHARE, ["P-1", "P-2"]).frame_object()
    obj["items"] = ["P-2", "P-1"]
    with pytest.raises(FrameError, match="canonical"):
        sampling.frame_from_object(obj)


def test_another_algorithm_version_is_not_drawn_by_this_code():
    obj = sampling.facility_frame("echeng", "canteen", Rule.SHARE, ["P-1"]).frame_object()
    obj["algorithm_version"] = "lookback-draw-v2"
    frame = sampling.frame_from_object(obj)
    with pytest.raises(FrameError, match="unsupported algorithm version"):
        sampling.draw_stratum(frame, draw_id="d", entropy="e")
