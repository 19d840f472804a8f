"""The verifiable draw: frames, keys, the pick sequence and the sampling rules R1–R3.

Specified in docs/sampling.md, precisely enough to reimplement in another language. This module
is the whole algorithm: it imports nothing from the service but `shared.canonical`, so the
stand-alone verifier (`lookback inspection verify-draw`) needs no database and no service code.
That is why it stays one file past 400 lines: frames, the pick sequence, the rules, the export's
verification and the documented test vectors are one self-contained unit an auditor reads (and
copies) whole; splitting it would make the verifier depend on a package of the service.

It stays one module past 400 lines because it is the one file an auditor reads beside
docs/sampling.md: the algorithm, the checks of an export, and the checks of an export against the
draw's signed events (`verify_against_log`).

Anything that changes a pick for the same inputs is a new algorithm: bump ALGORITHM_VERSION and
keep the old one recomputable, or every printed 抽查名单 made so far stops verifying.

The numbers the rules take (R2's share, R3's household minimum and quota) are not written here:
they come from the campaign file through the service and are recorded in each frame object, so a
recomputation uses what the draw recorded, never what this code would assume.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from fractions import Fraction
from typing import Any

from shared.canonical import canonical_json

ALGORITHM_VERSION = "lookback-draw-v1"

# 2^256: the number of distinct SHA-256 values read as big-endian integers.
_HASH_SPACE = 1 << 256


class Rule(StrEnum):
    FULL_COVERAGE = "R1"        # every item, no randomness
    SHARE = "R2"                # n = ceil(N * p / q) for the frame's share p/q, drawn
    TOWNSHIP_HOUSEHOLDS = "R3"  # one township, then households in it


# The share of an R2 frame whose object names none: every frame made before shares were recorded
# (the Ezhou 2024 campaign draws one half). Such a frame omits the field, so its digest, and every
# published digest and test vector, is what it always was.
ONE_HALF = Fraction(1, 2)


class FrameError(ValueError):
    """A frame or export is malformed (not canonical, duplicated ids, forbidden characters)."""


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An item left out of the frame, and why (retired with its reason, not a provincial key...)."""

    item_id: str
    code: str
    detail: str = ""

    def to_object(self) -> dict[str, str]:
        return {"id": self.item_id, "code": self.code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class StratumFrame:
    """The frozen, canonical frame of one stratum (unit, project type).

    R1/R2 frames list `items`; an R3 frame lists `townships` as (name, household codes) pairs.
    An R2 frame carries its `share` of the frame to sample (in lowest terms, as Fraction keeps
    it). Construct through `facility_frame` / `adaptation_frame`, which sort and check.
    """

    unit: str
    project_type: str
    rule: Rule
    items: tuple[str, ...] = ()
    townships: tuple[tuple[str, tuple[str, ...]], ...] = ()
    min_households: int | None = None
    households_per_township: int | None = None
    share: Fraction | None = None
    exclusions: tuple[Exclusion, ...] = ()
    algorithm_version: str = ALGORITHM_VERSION

    @property
    def stratum(self) -> str:
        return stratum_label(self.unit, self.project_type)

    @property
    def size(self) -> int:
        """N: projects in the frame, or adapted households over all townships for R3."""
        if self.rule is Rule.TOWNSHIP_HOUSEHOLDS:
            return sum(len(codes) for _, codes in self.townships)
        return len(self.items)

    def frame_object(self) -> dict[str, Any]:
        """The JSON object whose canonical encoding the frame digest is taken over."""
        obj: dict[str, Any] = {
            "algorithm_version": self.algorithm_version,
            "unit": self.unit,
            "project_type": self.project_type,
            "rule": self.rule.value,
            "excluded": [e.to_object() for e in self.exclusions],
        }
        if self.rule is Rule.TOWNSHIP_HOUSEHOLDS:
            obj["min_households"] = self.min_households
            obj["households_per_township"] = self.households_per_township
            obj["townships"] = {name: list(codes) for name, codes in self.townships}
        else:
            obj["items"] = list(self.items)
        if self.share is not None and self.share != ONE_HALF:
            obj["share"] = {"numerator": self.share.numerator,
                            "denominator": self.share.denominator}
        return obj

    @property
    def digest(self) -> str:
        return frame_digest(self.frame_object())


@dataclass(frozen=True, slots=True)
class StratumDraw:
    """The outcome of one stratum: the sample, then the ordered replacement list."""

    stratum: str
    rule: Rule
    frame_digest: str
    frame_size: int
    sample_size: int
    picks: tuple[str, ...]
    replacements: tuple[str, ...]
    no_eligible_project: bool
    insufficient_sample: bool = False
    township: str | None = None
    township_order: tuple[str, ...] = ()

    def to_object(self) -> dict[str, Any]:
        return {
            "stratum": self.stratum,
            "rule": self.rule.value,
            "frame_digest": self.frame_digest,
            "frame_size": self.frame_size,
            "sample_size": self.sample_size,
            "picks": list(self.picks),
            "replacements": list(self.replacements),
            "no_eligible_project": self.no_eligible_project,
            "insufficient_sample": self.insufficient_sample,
            "township": self.township,
            "township_order": list(self.township_order),
        }


# ---------------------------------------------------------------------------------------------
# Frames


def stratum_label(unit: str, project_type: str) -> str:
    return f"{unit}/{project_type}"


def frame_digest(frame_object: Mapping[str, Any]) -> str:
    """SHA-256 (lower-case hex) of the canonical JSON of a frame object."""
    return hashlib.sha256(canonical_json(frame_object)).hexdigest()


def facility_frame(unit: str, project_type: str, rule: Rule, item_ids: Iterable[str],
                   exclusions: Iterable[Exclusion] = (), *,
                   share: Fraction | None = None) -> StratumFrame:
    """The frame of an R1 or R2 stratum: the eligible project ids, sorted.

    `share` (R2 only) is the fraction of the frame to sample, 0 < share <= 1; an R2 frame given
    none samples one half, as a frame object without the field means.
    """
    rule = Rule(rule)
    if rule is Rule.TOWNSHIP_HOUSEHOLDS:
        raise FrameError("an R3 stratum is built with adaptation_frame")
    _check_label("unit", unit)
    _check_label("project type", project_type)
    if rule is Rule.SHARE:
        share = ONE_HALF if share is None else share
        if not isinstance(share, Fraction) or not 0 < share <= 1:
            raise FrameError(f"an R2 share is a fraction above 0 and at most 1, got {share!r}")
    elif share is not None:
        raise FrameError(f"only an R2 frame has a share, not {rule.value}")
    return StratumFrame(unit=unit, project_type=project_type, rule=rule,
                        items=_sorted_distinct(item_ids, "item"), share=share,
                        exclusions=_sorted_exclusions(exclusions))


def adaptation_frame(unit: str, townships: Mapping[str, Iterable[str]], *, project_type: str,
                     min_households: int, households_per_township: int,
                     exclusions: Iterable[Exclusion] = ()) -> StratumFrame:
    """The frame of an R3 stratum: townships (with >= 1 household) and their household codes."""
    _check_label("unit", unit)
    _check_label("project type", project_type)
    if min_households < 1 or households_per_township < 1:
        raise FrameError("min_households and households_per_township must be at least 1")
    pairs = []
    seen: set[str] = set()
    for name in sorted(townships):
        _check_label("township", name)
        codes = _sorted_distinct(townships[name], "household")
        if not codes:
            continue  # a township without households is not part of the frame
        if seen.intersection(codes):
            raise FrameError(f"household listed in two townships: {sorted(seen.intersection(codes))}")
        seen.update(codes)
        pairs.append((name, codes))
    return StratumFrame(unit=unit, project_type=project_type, rule=Rule.TOWNSHIP_HOUSEHOLDS,
                        townships=tuple(pairs), min_households=min_households,
                        households_per_township=households_per_township,
                        exclusions=_sorted_exclusions(exclusions))


def frame_from_object(obj: Mapping[str, Any]) -> StratumFrame:
    """Parse an exported frame object, refusing anything that is not already canonical.

    Canonical means: ids sorted by code point and distinct, exclusions sorted, the fields of
    exactly one rule present, an R2 share in lowest terms and left out when it is one half. A
    re-sorted frame would hash differently, so a non-canonical frame is refused rather than
    silently repaired.
    """
    try:
        rule = Rule(obj["rule"])
        common = {"algorithm_version", "unit", "project_type", "rule", "excluded"}
        extra = ({"min_households", "households_per_township", "townships"}
                 if rule is Rule.TOWNSHIP_HOUSEHOLDS else {"items"})
        if rule is Rule.SHARE and "share" in obj:
            extra = extra | {"share"}
        if set(obj) != common | extra:
            raise FrameError(f"frame fields {sorted(obj)} are not those of rule {rule.value}")
        exclusions = [Exclusion(item_id=e["id"], code=e["code"], detail=e["detail"])
                      for e in obj["excluded"]]
        if rule is Rule.TOWNSHIP_HOUSEHOLDS:
            frame = adaptation_frame(obj["unit"], obj["townships"], project_type=obj["project_type"],
                                     min_households=obj["min_households"],
                                     households_per_township=obj["households_per_township"],
                                     exclusions=exclusions)
        else:
            share = _share_from_object(obj["share"]) if "share" in obj else None
            frame = facility_frame(obj["unit"], obj["project_type"], rule, obj["items"], exclusions,
                                   share=share)
    except (KeyError, TypeError, AttributeError) as exc:
        raise FrameError(f"malformed frame object: {exc!r}") from exc
    frame = _replace_version(frame, obj["algorithm_version"])
    if frame.frame_object() != dict(obj):
        raise FrameError(f"frame of {frame.stratum} is not in canonical form (sorted, distinct, "
                         "townships without households left out)")
    return frame


def _share_from_object(value: Any) -> Fraction:
    """`{"numerator": p, "denominator": q}` with integers 1 <= p <= q (JSON has no fractions)."""
    if not isinstance(value, Mapping) or set(value) != {"numerator", "denominator"}:
        raise FrameError('an R2 share is {"numerator": p, "denominator": q}')
    numerator, denominator = value["numerator"], value["denominator"]
    if type(numerator) is not int or type(denominator) is not int \
            or not 1 <= numerator <= denominator:
        raise FrameError(f"an R2 share needs integers 1 <= numerator <= denominator, got "
                         f"{numerator!r}/{denominator!r}")
    return Fraction(numerator, denominator)


def _replace_version(frame: StratumFrame, version: Any) -> StratumFrame:
    if not isinstance(version, str):
        raise FrameError("algorithm_version must be a string")
    return replace(frame, algorithm_version=version)


def _sorted_distinct(ids: Iterable[str], what: str) -> tuple[str, ...]:
    ids = list(ids)
    for item in ids:
        if not isinstance(item, str) or not item:
            raise FrameError(f"{what} ids must be non-empty strings, got {item!r}")
    ordered = sorted(ids)  # Python orders str by code point, which is also UTF-8 byte order
    duplicates = sorted({a for a, b in zip(ordered, ordered[1:], strict=False) if a == b})
    if duplicates:
        raise FrameError(f"duplicate {what} ids in frame: {duplicates}")
    return tuple(ordered)


def _sorted_exclusions(exclusions: Iterable[Exclusion]) -> tuple[Exclusion, ...]:
    return tuple(sorted(exclusions, key=lambda e: (e.item_id, e.code, e.detail)))


def _check_label(what: str, value: Any) -> None:
    # "|" separates the fields of the key; forbidding it keeps the key unambiguous.
    if not isinstance(value, str) or not value or "|" in value:
        raise FrameError(f"{what} must be a non-empty string without '|', got {value!r}")


# ---------------------------------------------------------------------------------------------
# The pick sequence


def draw_key(draw_id: str, stratum: str, digest: str, entropy: str) -> bytes:
    """key = UTF-8(draw_id "|" stratum "|" frame_digest_hex "|" entropy), entropy verbatim."""
    _check_label("draw id", draw_id)
    _check_label("stratum", stratum)
    if not isinstance(entropy, str) or not entropy:
        raise FrameError("entropy must be a non-empty string")
    return "|".join((draw_id, stratum, digest, entropy)).encode("utf-8")


def attempt_message(key: bytes, pick: int, attempt: int) -> bytes:
    """The bytes hashed for attempt `attempt` of pick `pick` (both counted from 0).

    Attempt 0 is `key "|" i`, the form the campaign's rules state; a rejected attempt j >= 1
    hashes `key "|" i "|" j`. Numbers are ASCII decimal without leading zeros.
    """
    message = key + b"|" + str(pick).encode("ascii")
    if attempt:
        message += b"|" + str(attempt).encode("ascii")
    return message


def acceptance_limit(remaining: int) -> int:
    """The largest multiple of `remaining` not above 2^256; values at or above it are rejected."""
    if remaining < 1:
        raise ValueError("nothing left to pick from")
    return _HASH_SPACE - _HASH_SPACE % remaining


def accepted_index(value: int, remaining: int) -> int | None:
    """Map a 256-bit value onto 0..remaining-1 without modulo bias, or None if it is rejected."""
    if value >= acceptance_limit(remaining):
        return None
    return value % remaining


@dataclass(frozen=True, slots=True)
class PickTrace:
    """How one pick was made, for test vectors and for an auditor debugging a reimplementation."""

    pick: int
    remaining: int
    attempts: int
    digest: str   # hex SHA-256 of the accepted attempt
    index: int
    item: str


def _sha256(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def permutation_trace(key: bytes, items: Sequence[str]) -> list[PickTrace]:
    """Order every item: pick i takes index h_i mod m from the m items still remaining.

    `items` must already be in frame order (sorted); the remaining list keeps that order as
    picked items are removed. The first n picks are the sample, the rest the replacement list,
    so asking for one more replacement extends the same sequence and never redraws.
    """
    remaining = list(items)
    trace = []
    pick = 0
    while remaining:
        attempt = 0
        while True:
            digest = _sha256(attempt_message(key, pick, attempt))
            index = accepted_index(int.from_bytes(digest, "big"), len(remaining))
            if index is not None:
                break
            attempt += 1
        trace.append(PickTrace(pick=pick, remaining=len(remaining), attempts=attempt + 1,
                               digest=digest.hex(), index=index, item=remaining[index]))
        del remaining[index]
        pick += 1
    return trace


def permute(key: bytes, items: Sequence[str]) -> list[str]:
    return [step.item for step in permutation_trace(key, items)]


def share_sample_size(frame_size: int, share: Fraction) -> int:
    """R2: n = ceil(N * p / q) in integers. Never round() (round(2.5) == 2) nor floats."""
    numerator, denominator = share.numerator, share.denominator
    return (frame_size * numerator + denominator - 1) // denominator


def township_key_label(stratum: str) -> str:
    return f"{stratum}/townships"


def household_key_label(stratum: str, township: str) -> str:
    return f"{stratum}/households/{township}"


# ---------------------------------------------------------------------------------------------
# The rules


def draw_stratum(frame: StratumFrame, *, draw_id: str, entropy: str) -> StratumDraw:
    """Apply the frame's rule with the revealed entropy."""
    if frame.algorithm_version != ALGORITHM_VERSION:
        raise FrameError(f"unsupported algorithm version {frame.algorithm_version!r}; "
                         f"this code implements {ALGORITHM_VERSION!r}")
    digest = frame.digest
    if frame.rule is Rule.TOWNSHIP_HOUSEHOLDS:
        return _draw_adaptation(frame, digest, draw_id=draw_id, entropy=entropy)
    size = len(frame.items)
    if frame.rule is Rule.FULL_COVERAGE:
        # No randomness: every item, in frame order. The key is still checked for its form.
        draw_key(draw_id, frame.stratum, digest, entropy)
        order = list(frame.items)
        sample_size = size
    else:
        assert frame.share is not None  # facility_frame gives every R2 frame its share
        order = permute(draw_key(draw_id, frame.stratum, digest, entropy), frame.items)
        sample_size = share_sample_size(size, frame.share)
    return StratumDraw(stratum=frame.stratum, rule=frame.rule, frame_digest=digest,
                       frame_size=size, sample_size=sample_size,
                       picks=tuple(order[:sample_size]), replacements=tuple(order[sample_size:]),
                       no_eligible_project=size == 0)


def _draw_adaptation(frame: StratumFrame, digest: str, *, draw_id: str,
                     entropy: str) -> StratumDraw:
    assert frame.min_households is not None and frame.households_per_township is not None
    households = dict(frame.townships)
    eligible = [name for name, codes in frame.townships if len(codes) >= frame.min_households]
    fallback = not eligible
    if fallback:
        # No township reaches the minimum: draw among those with any household, take all, flag.
        eligible = [name for name, _ in frame.townships]
    if not eligible:
        draw_key(draw_id, frame.stratum, digest, entropy)
        return StratumDraw(stratum=frame.stratum, rule=frame.rule, frame_digest=digest,
                           frame_size=0, sample_size=0, picks=(), replacements=(),
                           no_eligible_project=True)
    township_order = permute(
        draw_key(draw_id, township_key_label(frame.stratum), digest, entropy), eligible)
    township = township_order[0]
    codes = households[township]
    order = permute(
        draw_key(draw_id, household_key_label(frame.stratum, township), digest, entropy), codes)
    sample_size = len(codes) if fallback else min(frame.households_per_township, len(codes))
    return StratumDraw(stratum=frame.stratum, rule=frame.rule, frame_digest=digest,
                       frame_size=frame.size, sample_size=sample_size,
                       picks=tuple(order[:sample_size]), replacements=tuple(order[sample_size:]),
                       no_eligible_project=False,
                       insufficient_sample=fallback or sample_size < frame.households_per_township,
                       township=township, township_order=tuple(township_order))


def frames_digest(digests_by_stratum: Mapping[str, str]) -> str:
    """The digest of a whole draw's frames: SHA-256 of canonical JSON {stratum: frame_digest}."""
    return hashlib.sha256(canonical_json(dict(digests_by_stratum))).hexdigest()


# ---------------------------------------------------------------------------------------------
# Export records and their verification


EXPORT_FORMAT = "lookback-draw-export-v1"


def stratum_record(frame: StratumFrame, draw: StratumDraw,
                   household_replacements: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """One stratum of an export: the frame object and everything the draw produced from it."""
    record = {"frame": frame.frame_object(), **draw.to_object()}
    if frame.rule is Rule.TOWNSHIP_HOUSEHOLDS:
        record["household_replacements"] = [dict(r) for r in household_replacements]
    return record


def verify_document(doc: Mapping[str, Any]) -> list[str]:
    """Recompute an exported draw; return what differs (an empty list means it matches).

    Checks: the algorithm version is one this code implements; every frame is canonical and hashes
    to its stated digest, and that digest is the one listed for its stratum in `frame_digests`,
    whose own digest is `frames_digest`; every unit in the export has all its strata present;
    the picks, replacements, flags and township order equal a recomputation from the frame, the
    draw id and the entropy; each household replacement took the next pick of the sequence.
    """
    problems: list[str] = []
    try:
        version = doc["algorithm_version"]
        draw_id = doc["draw_id"]
        entropy = doc["entropy"]
        records = doc["strata"]
        listed = doc["frame_digests"]
        stated_total = doc["frames_digest"]
        units = doc["units"]
    except (KeyError, TypeError) as exc:
        return [f"export is missing a field: {exc}"]
    if doc.get("format") != EXPORT_FORMAT:
        problems.append(f"unknown export format {doc.get('format')!r}, expected {EXPORT_FORMAT!r}")
    if version != ALGORITHM_VERSION:
        return problems + [f"algorithm version {version!r} is not {ALGORITHM_VERSION!r}; "
                           "use a verifier that implements it"]
    if not isinstance(listed, dict) or frames_digest(listed) != stated_total:
        problems.append("frames_digest does not match the listed frame digests")
        listed = listed if isinstance(listed, dict) else {}
    seen: set[str] = set()
    for position, record in enumerate(records):
        try:
            problems.extend(_verify_record(record, draw_id=draw_id, entropy=entropy,
                                           version=version, listed=listed, seen=seen))
        except FrameError as exc:
            problems.append(f"stratum #{position}: {exc}")
        except (KeyError, TypeError, AttributeError) as exc:
            problems.append(f"stratum #{position}: malformed record ({exc!r})")
    for stratum in sorted(listed):
        unit = stratum.split("/", 1)[0]
        if unit in units and stratum not in seen:
            problems.append(f"{stratum}: listed in the draw but missing from this export")
    problems.extend(_verify_timing(doc))
    problems.extend(_verify_discretionary(doc, {s.split("/", 1)[0] for s in listed}))
    return problems


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time with its offset, or None (absent or unreadable: reported by the caller)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _verify_timing(doc: Mapping[str, Any]) -> list[str]:
    """The entropy cannot have been known before `entropy_not_before`: a reveal dated earlier means
    the draw was made with a value nobody could have known honestly (docs/sampling.md §1)."""
    not_before, revealed = doc.get("entropy_not_before"), doc.get("revealed_at")
    if not_before is None:
        return []
    start, reveal = _instant(not_before), _instant(revealed)
    if start is None or reveal is None:
        return [f"entropy_not_before {not_before!r} and revealed_at {revealed!r} must be ISO 8601 "
                "times with an offset"]
    if reveal < start:
        return [f"the entropy was revealed at {revealed}, before it could be known "
                f"(entropy_not_before {not_before})"]
    return []


def _verify_discretionary(doc: Mapping[str, Any], draw_units: set[str]) -> list[str]:
    """Discretionary picks are choices, not computed, so each must say why and name a unit of the
    draw (docs/sampling.md §7)."""
    problems = []
    picks = doc.get("discretionary") or []
    if not isinstance(picks, list):
        return ["discretionary is a list of {project_id, unit, reason}"]
    for n, pick in enumerate(picks):
        if not isinstance(pick, dict) or set(pick) != {"project_id", "unit", "reason"}:
            problems.append(f"discretionary #{n}: exactly project_id, unit and reason")
            continue
        if not isinstance(pick["project_id"], str) or not pick["project_id"]:
            problems.append(f"discretionary #{n}: no project id")
        if not isinstance(pick["reason"], str) or not pick["reason"].strip():
            problems.append(f"discretionary #{n} ({pick['project_id']}): no reason given")
        if pick["unit"] not in draw_units:
            problems.append(f"discretionary #{n} ({pick['project_id']}): unit {pick['unit']!r} is "
                            "not a unit of this draw")
    return problems


# ---------------------------------------------------------------------------------------------
# The export against the signed log


def draw_stream_id(draw_id: str) -> str:
    """The stream that holds a draw's events in the event store (and so in the audit log)."""
    return f"draw-{draw_id}"


_LIFE = ("inspection.FrameFrozen", "inspection.EntropyCommitted", "inspection.EntropyRevealed",
         "inspection.SampleDrawn")


def frozen_frame_object(stratum: Mapping[str, Any], algorithm_version: str) -> dict[str, Any]:
    """The frame object (§3) of one stratum as the FrameFrozen event records it."""
    obj: dict[str, Any] = {
        "algorithm_version": algorithm_version, "unit": stratum["unit"],
        "project_type": stratum["project_type"], "rule": stratum["rule"],
        "excluded": [{"id": e["id"], "code": e["code"], "detail": e.get("detail", "")}
                     for e in stratum.get("excluded", [])]}
    if stratum["rule"] == Rule.TOWNSHIP_HOUSEHOLDS.value:
        obj["min_households"] = stratum["min_households"]
        obj["households_per_township"] = stratum["households_per_township"]
        obj["townships"] = stratum["townships"]
    else:
        obj["items"] = stratum["items"]
    return obj


def verify_against_log(doc: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> list[str]:
    """Check an export against the draw's own events, read from a verified audit log.

    `events` are the entries of stream `draw-<draw_id>` in stream order, each `{"event_type",
    "payload"}` (payload None when the log holds no event row). Everything the export states
    about the frame, the commitment, the reveal, the picks, the discretionary picks and the
    household replacements must be what those signed events say; so a consistent rewrite of an
    export (a frame changed and every digest and pick recomputed) no longer passes.
    """
    problems: list[str] = []
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for n, event in enumerate(events):
        if event.get("payload") is None:
            return [f"draw event #{n} has no event row in the audit log"]
        by_type.setdefault(event["event_type"], []).append(event["payload"])
    order = [e["event_type"] for e in events if e["event_type"] in _LIFE]
    if order != list(_LIFE):
        return [f"the audit log's draw stream holds {order or 'no draw events'}, not one each of "
                f"{', '.join(_LIFE)} in that order"]
    frozen = by_type["inspection.FrameFrozen"][0]
    committed = by_type["inspection.EntropyCommitted"][0]
    revealed = by_type["inspection.EntropyRevealed"][0]
    drawn = by_type["inspection.SampleDrawn"][0]

    def same(what: str, stated: Any, logged: Any) -> None:
        if stated != logged:
            problems.append(f"{what}: the export says {stated!r}, the signed log {logged!r}")

    same("algorithm_version", doc.get("algorithm_version"), frozen["algorithm_version"])
    same("frames_digest", doc.get("frames_digest"), frozen["frames_digest"])
    logged_digests = {s["stratum"]: s["frame_digest"] for s in frozen["strata"]}
    same("frame_digests", doc.get("frame_digests"), logged_digests)
    frames = {s["stratum"]: frozen_frame_object(s, frozen["algorithm_version"])
              for s in frozen["strata"]}
    outcomes = {o["stratum"]: o for o in drawn["strata"]}
    replaced: dict[str, list[dict[str, str]]] = {}
    for step in by_type.get("inspection.HouseholdReplaced", []):
        replaced.setdefault(step["stratum"], []).append(
            {"replaced": step["replaced_household"], "replacement": step["replacement_household"],
             "reason_code": step["reason_code"]})
    for record in doc.get("strata", []):
        name = record.get("stratum")
        if name not in frames:
            problems.append(f"{name}: no such stratum was frozen in the signed log")
            continue
        same(f"{name}: frame", record.get("frame"), frames[name])
        outcome = outcomes.get(name, {})
        for key in ("frame_digest", "frame_size", "sample_size", "picks", "replacements",
                    "no_eligible_project", "insufficient_sample", "township", "township_order"):
            same(f"{name}: {key}", record.get(key), outcome.get(key))
        if "household_replacements" in record:
            same(f"{name}: household_replacements", record["household_replacements"],
                 replaced.get(name, []))
    same("entropy_statement", doc.get("entropy_statement"), committed["statement"])
    same("entropy", doc.get("entropy"), revealed["entropy"])
    for field_name, logged in (("entropy_not_before", committed.get("not_before")),
                               ("revealed_at", revealed["revealed_at"])):
        if _instant(doc.get(field_name)) != _instant(logged):
            problems.append(f"{field_name}: the export says {doc.get(field_name)!r}, the signed log "
                            f"{logged!r}")
    start, reveal = _instant(committed.get("not_before")), _instant(revealed["revealed_at"])
    if start is not None and reveal is not None and reveal < start:
        problems.append(f"the signed log reveals the entropy at {revealed['revealed_at']}, before "
                        f"it could be known ({committed['not_before']})")
    units = set(doc.get("units", []))
    logged_picks = [{"project_id": p["project"]["project_id"], "unit": p["project"]["unit"],
                     "reason": p["reason"]}
                    for p in by_type.get("inspection.DiscretionaryPickAdded", [])
                    if p["project"]["unit"] in units]
    same("discretionary", sorted(doc.get("discretionary") or [], key=lambda p: p.get("project_id")),
         sorted(logged_picks, key=lambda p: p["project_id"]))
    return problems


def _verify_record(record: Mapping[str, Any], *, draw_id: str, entropy: str, version: str,
                   listed: Mapping[str, str], seen: set[str]) -> list[str]:
    frame = frame_from_object(record["frame"])
    if frame.algorithm_version != version:
        return [f"{frame.stratum}: frame algorithm version {frame.algorithm_version!r} "
                f"differs from the export's {version!r}"]
    name = frame.stratum
    if name in seen:
        return [f"{name}: appears twice"]
    seen.add(name)
    problems = []
    if listed.get(name) != frame.digest:
        problems.append(f"{name}: frame digest {frame.digest} is not the one listed for the draw "
                        f"({listed.get(name)})")
    expected = stratum_record(frame, draw_stratum(frame, draw_id=draw_id, entropy=entropy),
                              record.get("household_replacements", ()))
    for key, value in expected.items():
        if key in ("frame", "household_replacements"):
            continue
        if record.get(key) != value:
            problems.append(f"{name}: {key} is {record.get(key)!r}, recomputed {value!r}")
    if frame.rule is Rule.TOWNSHIP_HOUSEHOLDS:
        problems.extend(_verify_replacements(name, expected, record.get("household_replacements", [])))
    return problems


def _verify_replacements(name: str, expected: Mapping[str, Any],
                         replacements: Sequence[Mapping[str, str]]) -> list[str]:
    active = list(expected["picks"])
    queue = list(expected["replacements"])
    for n, step in enumerate(replacements):
        replaced, replacement = step.get("replaced"), step.get("replacement")
        if replaced not in active:
            return [f"{name}: replacement #{n} replaces {replaced!r}, which was not in the sample"]
        if not queue or replacement != queue[0]:
            nxt = queue[0] if queue else None
            return [f"{name}: replacement #{n} took {replacement!r}, the sequence gives {nxt!r}"]
        active[active.index(replaced)] = queue.pop(0)
        if not step.get("reason_code"):
            return [f"{name}: replacement #{n} has no reason code"]
    return []


@dataclass(frozen=True, slots=True)
class Vector:
    """A test vector for docs/sampling.md: inputs, then what any implementation must output."""

    name: str
    draw_id: str
    entropy: str
    frame: dict[str, Any]
    expected: dict[str, Any] = field(default_factory=dict)


def make_vector(name: str, frame: StratumFrame, *, draw_id: str, entropy: str) -> Vector:
    draw = draw_stratum(frame, draw_id=draw_id, entropy=entropy)
    expected: dict[str, Any] = {
        "frame_canonical_json": canonical_json(frame.frame_object()).decode("utf-8"),
        "frame_digest": draw.frame_digest, **{
        k: v for k, v in draw.to_object().items() if k not in ("stratum", "rule", "frame_digest")}}
    if frame.rule is Rule.SHARE and frame.items:
        key = draw_key(draw_id, frame.stratum, frame.digest, entropy)
        expected["key_utf8"] = key.decode("utf-8")
        expected["first_pick_sha256"] = permutation_trace(key, frame.items)[0].digest
    return Vector(name=name, draw_id=draw_id, entropy=entropy, frame=frame.frame_object(),
                  expected=expected)


def documented_vectors() -> list[Vector]:
    """The vectors printed in docs/sampling.md (a test checks the document against these)."""
    draw_id = "ezhou-2024-city-01"
    entropy = "福彩3D 2024-05-08: 3 7 1"
    canteens = facility_frame("echeng", "canteen", Rule.SHARE,
                              [f"P-{n:03d}" for n in (12, 3, 7, 21, 9)],
                              [Exclusion("P-015", "retired", "改作他用")])

    def households(unit: str, townships: Mapping[str, list[str]]) -> StratumFrame:
        # Ezhou 2024's R3 numbers, stated in the frame as every R3 frame states them.
        return adaptation_frame(unit, townships, project_type="home_adaptation",
                                min_households=2, households_per_township=2)

    return [
        make_vector("R2, N = 5 (odd): n = 3", canteens, draw_id=draw_id, entropy=entropy),
        make_vector("R2, N = 4, ASCII entropy", facility_frame(
            "huarong", "community_center", Rule.SHARE, ["C-1", "C-2", "C-3", "C-4"]),
            draw_id=draw_id, entropy="2024-05-08 3D 371"),
        make_vector("R2, N = 1: n = 1", facility_frame(
            "gedian", "canteen", Rule.SHARE, ["G-1"]), draw_id=draw_id, entropy=entropy),
        make_vector("R2, N = 0: no eligible project", facility_frame(
            "linkong", "canteen", Rule.SHARE, []), draw_id=draw_id, entropy=entropy),
        make_vector("R2, share 2/3 (another campaign's), N = 5: n = 4", facility_frame(
            "echeng", "canteen", Rule.SHARE, ["Q-1", "Q-2", "Q-3", "Q-4", "Q-5"],
            share=Fraction(2, 3)), draw_id=draw_id, entropy=entropy),
        make_vector("R1: every provincial key complex", facility_frame(
            "echeng", "complex", Rule.FULL_COVERAGE, ["X-2", "X-1"],
            [Exclusion("X-3", "not_provincial_key")]), draw_id=draw_id, entropy=entropy),
        make_vector("R3: townships with >= 2 households", households(
            "echeng", {"凤凰街道": ["H-01", "H-02", "H-03"], "泽林镇": ["H-10", "H-11"],
                       "杜山镇": ["H-20"]}), draw_id=draw_id, entropy=entropy),
        make_vector("R3: no township has 2, take all and flag 样本不足", households(
            "linkong", {"燕矶镇": ["H-30"], "杨叶镇": ["H-40"]}), draw_id=draw_id, entropy=entropy),
    ]
