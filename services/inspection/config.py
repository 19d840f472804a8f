"""The campaign file read as the inspection service's configuration (built once per process).

The campaign file is the only source of the sampling rules: which rule each project type is
sampled by, R2's share, R3's household minimum and quota. A rule the algorithm cannot honour is
refused at start with the campaign field named, never silently approximated.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from services.inspection import sampling
from services.inspection.domain import SamplingPolicy
from shared.campaign import Campaign, CampaignConfigError, ProjectKind


def sampling_policy(campaign: Campaign) -> SamplingPolicy:
    """The campaign's `[sampling]` table and its project types' rules, as the domain's policy.

    R3 draws exactly one township per unit (DOMAIN.md §5; docs/sampling.md §6): a campaign asking
    for more would get a sample that silently ignores it, so it is refused at start instead.
    """
    settings = campaign.sampling
    if settings.r3_townships_to_draw != 1:
        raise CampaignConfigError(f"campaign {campaign.id}", [(
            "sampling.r3_townships_to_draw",
            f"{sampling.ALGORITHM_VERSION} draws exactly one township per unit")])
    return SamplingPolicy(
        rules=MappingProxyType({t.code: sampling.Rule(t.sampling_rule.value)
                                for t in campaign.project_types}),
        r2_share=Fraction(settings.r2_numerator, settings.r2_denominator),
        min_households=settings.r3_min_households_per_township,
        households_per_township=settings.r3_households_to_draw)


@dataclass(frozen=True)
class InspectionDeps:
    """What the inspection service's handlers, projections and routes share."""

    campaign: Campaign
    policy: SamplingPolicy

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> InspectionDeps:
        return cls(campaign=campaign, policy=sampling_policy(campaign))

    @property
    def units(self) -> tuple[str, ...]:
        return self.campaign.unit_codes

    @property
    def programme_type(self) -> str:
        """The project type code of home-adaptation programmes (households belong to one)."""
        for project_type in self.campaign.project_types:
            if project_type.kind == ProjectKind.PROGRAMME:
                return project_type.code
        raise CampaignConfigError(f"campaign {self.campaign.id}", [
            ("project_types", "no project type of kind programme, yet households arrived")])

    def local(self, moment: dt.datetime) -> dt.datetime:
        """The moment in the campaign's time zone, so `now.date()` is the local day (a visit on
        the morning of May 10 in Ezhou is still May 9 in UTC)."""
        return moment.astimezone(self.campaign.tz)
