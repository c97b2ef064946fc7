"""The History view's search form as a `HistoryQuery`: pure functions, checked strictly (the form is user input)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.queue.history import HistoryQuery

__all__ = ["Period", "SearchError", "SearchForm", "history_query"]

_SEED_RE = re.compile(r"[0-9]{1,20}")
_DAY_MS = 86_400_000


class Period(Enum):
    """How far back to look, in days (None: any time)."""

    ANY = None
    DAY = 1
    WEEK = 7
    MONTH = 30
    YEAR = 365

    @property
    def label(self) -> str:
        """What the period combo shows."""
        return {None: "Any time", 1: "Last 24 hours", 7: "Last 7 days", 30: "Last 30 days",
                365: "Last year"}[self.value]


class SearchError(ValueError):
    """A search field holds something that is not a valid filter; the message names the field."""


@dataclass(frozen=True, slots=True)
class SearchForm:
    """What the user typed and picked."""

    words: str = ""
    model: str = ""
    seed: str = ""
    status: JobStatus | None = None
    period: Period = Period.ANY
    favourites: bool = False


def history_query(form: SearchForm, *, now_ms: int, limit: int = 100) -> HistoryQuery:
    """The query for a form; raises `SearchError` for a seed that is not a whole number."""
    seed_text = form.seed.strip()
    if seed_text and not _SEED_RE.fullmatch(seed_text):
        raise SearchError("Seed: a whole number (0 or more)")
    if form.status is not None and not form.status.is_terminal:
        raise SearchError("Status: the history holds finished, failed and cancelled jobs only")
    since = None if form.period.value is None else now_ms - form.period.value * _DAY_MS
    return HistoryQuery(text=form.words.strip(), model=form.model.strip(),
                        seed=int(seed_text) if seed_text else None, status=form.status, since_ms=since,
                        favourites=form.favourites, limit=limit)
