"""Batches folded into one row of the jobs table: which rows a folded batch hides, and what its row shows.

A folded batch is shown by its lead (its first row in the table); the other members are hidden. The lead's row
shows the whole batch: how many jobs, how many ended, the combined progress and one status for all of them. Acting
on a folded row (cancel, retry, run again, move, drag) acts on every member. Qt-free: `JobsTableModel` keeps one
`BatchFolds` and asks it per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from comfystudio_desktop.jobs import JobRecord, JobStatus

__all__ = ["BatchFolds", "BatchSummary", "batch_status", "batch_summary"]

# The one status a batch shows: the first of these that any member has (running beats waiting, and so on).
_PRECEDENCE = (JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.FINISHED)


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """A batch as the table knows it: its jobs in table order, how many ended, its progress (0-100), its status."""

    batch_id: str
    job_ids: tuple[str, ...]
    queued: tuple[str, ...]
    ended: int
    progress: int
    status: JobStatus = JobStatus.QUEUED

    @property
    def title(self) -> str:
        """The menu's title: "Batch (3 of 6 done, 58 %)"."""
        return f"Batch ({self.ended} of {len(self.job_ids)} done, {self.progress} %)"

    @property
    def status_text(self) -> str:
        """The folded row's Status cell: "Processing · 3 of 6 done"."""
        return f"{self.status.value.capitalize()} · {self.ended} of {len(self.job_ids)} done"


def batch_status(statuses: Iterable[JobStatus]) -> JobStatus:
    """The status a batch shows for its members' statuses (QUEUED for none)."""
    present = set(statuses)
    return next((s for s in _PRECEDENCE if s in present), JobStatus.QUEUED)


def batch_summary(batch_id: str, records: Iterable[JobRecord]) -> BatchSummary:
    """Sum up the records of one batch (each ended job counts as 100 %)."""
    members = [r for r in records if r.job is not None and r.job.batch_id == batch_id]
    ended = sum(r.status.is_terminal for r in members)
    done = sum(100 if r.status.is_terminal else r.progress for r in members)
    return BatchSummary(batch_id, tuple(r.job_id for r in members),
                        tuple(r.job_id for r in members if r.status == JobStatus.QUEUED), ended,
                        done // len(members) if members else 0, batch_status(r.status for r in members))


class BatchFolds:
    """The folded batches: each one's lead and members (in table order), and the member rows they hide."""

    def __init__(self) -> None:
        self._members: dict[str, list[str]] = {}  # batch id → member job ids, the lead first
        self._batch_of: dict[str, str] = {}  # member job id → its folded batch
        #: The job ids whose rows are hidden (every member of a folded batch but its lead); read per row by the
        #: filter, which holds this very set: a plain set, changed in place, never replaced.
        self.hidden: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._members)

    def fold(self, batch_id: str, job_ids: Sequence[str]) -> bool:
        """Fold a batch whose rows are `job_ids` (in table order); False (nothing folded) for fewer than two."""
        if len(job_ids) < 2 or batch_id in self._members:
            return False
        self._members[batch_id] = list(job_ids)
        for job_id in job_ids:
            self._batch_of[job_id] = batch_id
        self.hidden.update(job_ids[1:])
        return True

    def unfold(self, batch_id: str) -> list[str]:
        """Show a batch's rows again; returns its members (empty if it was not folded)."""
        members = self._members.pop(batch_id, [])
        for job_id in members:
            self._batch_of.pop(job_id, None)
            self.hidden.discard(job_id)
        return members

    def add(self, batch_id: str, job_id: str) -> bool:
        """A new row of a folded batch joins it, hidden; False when the batch is not folded or has it already."""
        members = self._members.get(batch_id)
        if members is None or job_id in self._batch_of:
            return False
        members.append(job_id)
        self._batch_of[job_id] = batch_id
        self.hidden.add(job_id)
        return True

    def keep_only(self, job_ids: Iterable[str]) -> None:
        """Forget members whose rows are gone; a batch left with one row unfolds, a lost lead is replaced."""
        present = set(job_ids)
        for batch_id, members in list(self._members.items()):
            kept = [j for j in members if j in present]
            if kept == members:
                continue
            self.unfold(batch_id)
            self.fold(batch_id, kept)

    def batch_of(self, job_id: str) -> str | None:
        """The folded batch `job_id` belongs to, or None."""
        return self._batch_of.get(job_id)

    def led_by(self, job_id: str) -> str | None:
        """The folded batch whose row `job_id` is, or None (not a lead)."""
        batch_id = self._batch_of.get(job_id)
        return batch_id if batch_id is not None and self._members[batch_id][0] == job_id else None

    def lead(self, batch_id: str) -> str | None:
        """The job whose row shows the folded batch, or None."""
        members = self._members.get(batch_id)
        return members[0] if members else None

    def members(self, batch_id: str) -> tuple[str, ...]:
        """A folded batch's job ids, the lead first (empty if not folded)."""
        return tuple(self._members.get(batch_id, ()))

    def expand(self, job_ids: Iterable[str]) -> list[str]:
        """`job_ids` with each folded batch's lead replaced by all its members (each id once, in order)."""
        out: list[str] = []
        seen: set[str] = set()
        for job_id in job_ids:
            batch_id = self.led_by(job_id)
            for member in self._members[batch_id] if batch_id is not None else (job_id,):
                if member not in seen:
                    seen.add(member)
                    out.append(member)
        return out
