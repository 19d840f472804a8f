"""Every code a service speaks, with the Chinese a person reads: one place for the API, the screens,
the exports and the bulk import.

A service declares its vocabulary (`ServiceSpec.vocabulary`): term sets of its own (operating
statuses, checklist items and answers, …) and, from the campaign file, the ones every service
shares (units, townships, project types, services, …) via `campaign_terms`. The shell serves it at
`GET /vocabulary`. The same `Terms` answers the questions the rest of the code asks:

- `label(code)`: the Chinese for a code (screens, exports, error messages);
- `find(text)`: the term a person typed, by code, label or an accepted alias (the bulk import
  reads `正常运营` and `operating` alike), ignoring width, case and spaces;
- `valid()`: the valid codes with their labels, for a 422 that says what would have been right.

A set refuses to be built with a code twice, or with one word naming two terms, so an import can
never read a word two ways. `enum_terms` refuses an enum member without a label, so a new status
cannot reach a screen as a bare English code.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.campaign import Campaign


def normalise_word(text: str) -> str:
    """How a typed word is compared: full-width/half-width folded, case and spaces ignored."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True, slots=True)
class Term:
    """One code: the Chinese label people read, other words people write for it, and a note."""

    code: str
    label: str
    aliases: tuple[str, ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "label": self.label}
        if self.aliases:
            body["aliases"] = list(self.aliases)
        if self.note:
            body["note"] = self.note
        return body


@dataclass(frozen=True)
class Terms:
    """A named set of codes (`kind`, e.g. `operating_status`) with a Chinese title (`运营状态`)."""

    kind: str
    title: str
    terms: tuple[Term, ...]
    _by_code: dict[str, Term] = field(init=False, repr=False, compare=False)
    _by_word: dict[str, Term] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_code: dict[str, Term] = {}
        by_word: dict[str, Term] = {}
        for term in self.terms:
            if term.code in by_code:
                raise ValueError(f"{self.kind}: code {term.code!r} appears twice")
            if not term.label.strip():
                raise ValueError(f"{self.kind}: {term.code!r} has no label")
            by_code[term.code] = term
            for word in (term.code, term.label, *term.aliases):
                key = normalise_word(word)
                other = by_word.get(key)
                if other is not None and other.code != term.code:
                    raise ValueError(f"{self.kind}: {word!r} would name both {other.code!r} and "
                                     f"{term.code!r}")
                by_word[key] = term
        object.__setattr__(self, "_by_code", by_code)
        object.__setattr__(self, "_by_word", by_word)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(term.code for term in self.terms)

    def has(self, code: str) -> bool:
        return code in self._by_code

    def term(self, code: str) -> Term:
        """The term of a code; KeyError for an unknown one."""
        return self._by_code[code]

    def label(self, code: str) -> str:
        """The Chinese for a code; an unknown code is shown as it is (never an error on a page)."""
        term = self._by_code.get(code)
        return term.label if term is not None else code

    def find(self, text: str) -> Term | None:
        """The term a person meant by a code, a label or an alias; None if none."""
        return self._by_word.get(normalise_word(text))

    def valid(self) -> str:
        """`operating（正常运营）、underperforming（运营不佳）`: what a 422 names as valid."""
        return "、".join(f"{term.code}（{term.label}）" for term in self.terms)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title,
                "terms": [term.as_dict() for term in self.terms]}


def enum_terms(kind: str, title: str, enum: type[Enum],
               labels: Mapping[Any, str | tuple[str, ...]],
               notes: Mapping[Any, str] | None = None) -> Terms:
    """Terms for every member of a string enum. `labels[member]` is the label, or a tuple of the
    label and the aliases the bulk import accepts. A member without a label is refused."""
    missing = [member.value for member in enum if member not in labels]
    if missing:
        raise ValueError(f"{kind}: no Chinese label for {', '.join(missing)}")
    terms = []
    for member in enum:
        given = labels[member]
        label, *aliases = (given,) if isinstance(given, str) else given
        terms.append(Term(code=str(member.value), label=label, aliases=tuple(aliases),
                          note=(notes or {}).get(member, "")))
    return Terms(kind, title, tuple(terms))


def code_terms(kind: str, title: str, labels: Mapping[str, str]) -> Terms:
    """Terms from a plain mapping of code to label."""
    return Terms(kind, title, tuple(Term(code, label) for code, label in labels.items()))


@dataclass(frozen=True)
class Vocabulary:
    """A service's term sets, by kind."""

    service: str
    sets: tuple[Terms, ...]

    def __post_init__(self) -> None:
        kinds = [terms.kind for terms in self.sets]
        repeated = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if repeated:
            raise ValueError(f"{self.service}: term sets declared twice: {', '.join(repeated)}")

    def __getitem__(self, kind: str) -> Terms:
        for terms in self.sets:
            if terms.kind == kind:
                return terms
        raise KeyError(kind)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(terms.kind for terms in self.sets)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "sets": [terms.as_dict() for terms in self.sets]}


def vocabulary(service: str, *groups: Terms | Iterable[Terms]) -> Vocabulary:
    sets: list[Terms] = []
    for group in groups:
        sets.extend([group] if isinstance(group, Terms) else group)
    return Vocabulary(service, tuple(sets))


# ----- what the campaign file names --------------------------------------------------------------

CAMPAIGN_KINDS = ("unit", "area", "township", "project_type", "service", "adaptation_item",
                  "phase", "deadline", "deduction_rule")


def campaign_terms(campaign: Campaign, kinds: Sequence[str] = CAMPAIGN_KINDS) -> list[Terms]:
    """The campaign file's codes and names as term sets (a service picks the kinds it speaks).

    Townships are named, not coded: their `code` is the name itself, the statistics code and the
    aliases are accepted words; a unit is also known by its area name (鄂城区)."""
    unknown = sorted(set(kinds) - set(CAMPAIGN_KINDS))
    if unknown:
        raise ValueError(f"unknown campaign term kinds: {', '.join(unknown)}")
    build = {
        "unit": lambda: Terms("unit", "填报单位", tuple(
            Term(u.code, u.name, aliases=(u.area_name,)) for u in campaign.units)),
        "area": lambda: Terms("area", "区域", tuple(
            Term(u.code, u.area_name) for u in campaign.units)),
        "township": lambda: Terms("township", "乡镇(街道)", tuple(
            Term(t.name, t.name, aliases=tuple(a for a in (t.code, *t.aliases) if a),
                 note=campaign.unit(t.unit).area_name) for t in campaign.townships)),
        "project_type": lambda: Terms("project_type", "项目类型", tuple(
            Term(t.code, t.name, note=f"抽查规则 {t.sampling_rule.value}")
            for t in campaign.project_types)),
        "service": lambda: Terms("service", "养老服务", tuple(
            Term(s.code, s.name, note="" if s.professional else "非专业服务，不计入服务项数")
            for s in campaign.services)),
        "adaptation_item": lambda: Terms("adaptation_item", "适老化改造项目", tuple(
            Term(i.code, i.name, note="基础类" if i.basic else "可选类")
            for i in campaign.adaptation_items)),
        "phase": lambda: Terms("phase", "活动阶段", tuple(
            Term(p.code, p.name) for p in campaign.phases)),
        "deadline": lambda: Terms("deadline", "报送时限", tuple(
            Term(d.code, d.name, note=f"{d.due_on.year}年{d.due_on.month}月{d.due_on.day}日前")
            for d in campaign.deadlines)),
        "deduction_rule": lambda: Terms("deduction_rule", "扣分规则", tuple(
            Term(r.id, r.description, note=f"每次扣{r.points}分") for r in campaign.deduction_rules)),
    }
    return [build[kind]() for kind in kinds]
