"""The registry's vocabulary: every code of its API with the Chinese people read, and the other
words the bulk import accepts for it (`GET /vocabulary`; shared/vocabulary.py).

One place for both directions: the labels and import words of the registry's own codes live
beside the enums in events.py (its public contract, so other services can print them too), the
campaign's codes in the campaign file; this module only assembles them. The importer reads a
cell with `find`, a 422 names `valid()`, a screen or an export prints `label`.
"""
from __future__ import annotations

from functools import lru_cache

from services.registry import events as e
from shared.campaign import Campaign
from shared.vocabulary import Term, Terms, Vocabulary, campaign_terms, enum_terms, vocabulary

# Words people write for a project type besides the campaign's own name (bulk import).
PROJECT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "complex": ("综合体", "养老服务综合体"),
    "community_center": ("社区中心", "社区居家养老中心"),
    "rural_center": ("互助照料中心",),
    "canteen": ("食堂", "老年食堂"),
    "home_adaptation": ("适老化改造",),
}

STATUS = enum_terms("operating_status", "运营状态", e.OperatingStatus, e.STATUS_LABELS)
OPERATOR_KIND = enum_terms("operator_kind", "运营主体类型", e.OperatorKind, e.OPERATOR_LABELS)
RETIREMENT_REASON = enum_terms("retirement_reason", "退出原因", e.RetirementReason,
                               e.RETIREMENT_LABELS)
LIAISON_ROLE = enum_terms("liaison_role", "联络人类别", e.LiaisonRole, e.LIAISON_ROLE_LABELS)
GENDER = enum_terms("gender", "性别", e.Gender, e.GENDER_LABELS)
LEDGER_STATE = enum_terms("ledger_state", "台账状态", e.LedgerState, e.LEDGER_STATE_LABELS)


def status_reasons(campaign: Campaign) -> Terms:
    """Why a project is not operating, as the ledger and the project list name it."""
    codes = [e.REASON_NOT_OPERATING, e.REASON_UNDERPERFORMING, e.REASON_FEWER_THAN_MIN_SERVICES,
             e.REASON_ASSESSED_UNDERPERFORMING,
             *(f"no_{code}" for code in campaign.service_rule.required_services)]
    return Terms("status_reason", "列入台账原因",
                 tuple(Term(code, e.describe_reason(code, campaign)) for code in codes))


def project_types(campaign: Campaign) -> Terms:
    [types] = campaign_terms(campaign, ["project_type"])
    return Terms(types.kind, types.title, tuple(
        Term(t.code, t.label, aliases=PROJECT_TYPE_ALIASES.get(t.code, ()), note=t.note)
        for t in types.terms))


@lru_cache(maxsize=8)
def registry_vocabulary(campaign: Campaign) -> Vocabulary:
    return vocabulary(
        "registry",
        campaign_terms(campaign, ["unit", "area", "township"]), project_types(campaign),
        campaign_terms(campaign, ["service", "adaptation_item"]),
        STATUS, status_reasons(campaign), LEDGER_STATE, OPERATOR_KIND, RETIREMENT_REASON,
        LIAISON_ROLE, GENDER)
