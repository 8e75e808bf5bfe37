"""The JSON the hub answers with, as pydantic models (so ``/openapi.json`` is exact).

Statistics of an empty window are ``null`` (JSON has no NaN).
"""
from __future__ import annotations

import math
from typing import Optional

import pydantic
from pydantic import Field

__all__ = ["SeriesStats", "EngineStats", "RealTime", "SeriesInfo", "SeriesList", "Bucket",
           "SeriesBuckets", "Range", "Priority", "WeddingModel", "WeddingView", "AlertModel",
           "AlertList", "AlertEventModel", "AlertHistory", "AckRequest", "FeedbackRequest",
           "FeedbackResult", "SilenceRequest", "SilenceModel", "SilenceList", "HubStats",
           "finite"]


def finite(x) -> Optional[float]:
    """``x`` as a float, or ``None`` for NaN, inf and ``None``."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


Labels = dict[str, str]


class SeriesStats(pydantic.BaseModel):
    name: str
    labels: Labels
    kind: str = Field(description="distribution, counter or gauge")
    count: int = Field(description="Points in the window")
    rate: float = Field(description="Per second over the window: points (distributions, "
                                    "gauges) or increments (counters)")
    mean: Optional[float]
    min: Optional[float]
    max: Optional[float]
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]
    alpha: Optional[float] = Field(description="Relative error bound of the percentiles")


class EngineStats(pydantic.BaseModel):
    accepted: int
    dropped: dict[str, int]
    series: int
    memory_bytes: int


class RealTime(pydantic.BaseModel):
    now: float = Field(description="Epoch seconds the window ends at")
    window: float = Field(description="Window length, seconds")
    series: list[SeriesStats]
    truncated: bool = Field(description="More series matched than `limit`")
    engine: Optional[EngineStats] = Field(
        None, description="The live engine's counters (operators only)")


class SeriesInfo(pydantic.BaseModel):
    name: str
    labels: Labels
    kind: str
    live: bool = Field(description="The live engine holds it")
    stored: bool = Field(description="A store holds it")


class SeriesList(pydantic.BaseModel):
    names: list[str]
    series: list[SeriesInfo]
    truncated: bool


class Bucket(pydantic.BaseModel):
    start: float
    count: int
    sum: float
    min: Optional[float]
    max: Optional[float]
    mean: Optional[float]
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]


class SeriesBuckets(pydantic.BaseModel):
    name: str
    labels: Labels
    kind: str
    buckets: list[Bucket]


class Range(pydantic.BaseModel):
    resolution: float = Field(description="Bucket width, seconds")
    start: float
    end: float
    series: list[SeriesBuckets]
    truncated: bool


class Priority(pydantic.BaseModel):
    wedding_day: bool = Field(description="Now is within the wedding day (event widened by "
                                          "the policy's hours before and after)")
    saturday: bool = Field(description="Saturday rules apply now (a Saturday in the wedding's timezone, or the wedding day of a Saturday wedding)")
    level: str = Field(description='"wedding_day", "saturday" or "normal"')


class WeddingModel(pydantic.BaseModel):
    id: str
    org_id: str
    date: str
    timezone: str
    guest_count: int
    venue: str
    start_time: Optional[str]
    end_time: Optional[str]
    event_start: float
    event_end: float


class WeddingPriority(pydantic.BaseModel):
    wedding: WeddingModel
    priority: Priority


class WeddingList(pydantic.BaseModel):
    now: float = Field(description="Epoch seconds the priorities are judged at")
    weddings: list[WeddingPriority] = Field(
        description="By event start; on the asked day in each wedding's own timezone")


class AlertModel(pydantic.BaseModel):
    id: str
    rule: str
    state: str = Field(description="pending or firing")
    labels: Labels
    annotations: dict[str, str]
    severity: str
    value: Optional[float]
    active_since: Optional[float]
    fired_at: Optional[float]
    acked_by: Optional[str]
    wedding_id: Optional[str]
    silenced_by: list[str]
    inhibited_by: list[str]


class AlertList(pydantic.BaseModel):
    alerts: list[AlertModel]


class WeddingView(pydantic.BaseModel):
    wedding: WeddingModel
    priority: Priority
    window: float
    series: list[SeriesStats]
    alerts: list[AlertModel]


class AlertEventModel(pydantic.BaseModel):
    alert_id: str
    rule: str
    status: str
    severity: str
    ts: float
    labels: Labels
    annotations: dict[str, str]
    value: Optional[float]
    wedding_id: Optional[str]


class AlertHistory(pydantic.BaseModel):
    events: list[AlertEventModel]


class AckRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    by: str = Field(min_length=1, max_length=200, description="Who acknowledges")


class FeedbackRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    false_positive: bool = Field(description="True: the alert was wrong (an adaptive "
                                             "threshold moves away from firing)")
    by: str = Field("", max_length=200)
    note: str = Field("", max_length=2000)


class FeedbackResult(pydantic.BaseModel):
    alert_id: str
    rule: str
    threshold: Optional[float]
    false_positives: int
    confirmed: int


class SilenceRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    matchers: list[str] = Field(min_length=1, max_length=20,
                                description='e.g. ["wedding_id=\\"w1\\"", "route=~\\"/photos.*\\""]')
    duration: Optional[str] = Field(None, max_length=40, description='e.g. "2h" (or give ends_at)')
    ends_at: Optional[float] = Field(None, description="Epoch seconds (or give duration)")
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)


class SilenceModel(pydantic.BaseModel):
    id: str
    matchers: list[str]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str


class SilenceList(pydantic.BaseModel):
    silences: list[SilenceModel]


class HubStats(pydantic.BaseModel):
    requests: int
    cache: dict[str, int]
    cache_hit_ratio: float
    rate_limited: int
    stream_clients: int
