"""``mla-leaderboard --status``: every cell's state, without running anything (nor
importing torch or MMF): done, running or queued (a SLURM job, or a local ``mmf_run``
holding the cell's lock), failed, cancelled or pending."""

from __future__ import annotations

from collections.abc import Sequence

from mla_plugin.leaderboard.cells import Cell
from mla_plugin.leaderboard.executors.slurm import ACTIVE, GONE, current_job, job_states
from mla_plugin.utils import locks

STATUS_ORDER = ("done", "running", "queued", "failed", "cancelled", "pending")


def status(cells: Sequence[Cell]) -> list[tuple[Cell, str, str]]:
    """(cell, state, detail) for every cell, without running anything: ``done``;
    ``running`` or ``queued`` (a SLURM job, or a local ``mmf_run`` holding the cell's lock);
    ``failed``; ``cancelled``; ``pending`` (never run, or interrupted)."""
    done = {c.key for c in cells if c.done()}
    jobs = {c.key: current_job(c) for c in cells if c.key not in done}
    states = job_states(j["job_id"] for j in jobs.values() if j)
    rows = []
    for cell in cells:
        record = cell.record() or {}
        job = jobs.get(cell.key)
        if cell.key in done:
            rows.append((cell, "done", _where(record)))
        elif job:
            state, jid = states[job["job_id"]], job["job_id"]
            if state == "PENDING":
                rows.append((cell, "queued", f"SLURM job {jid}"))
            elif state in ACTIVE:
                rows.append((cell, "running", f"SLURM job {jid} {state}"))
            elif state in ("CANCELLED", GONE):
                rows.append((cell, "cancelled", f"SLURM job {jid}"))
            else:
                rows.append((cell, "failed", f"SLURM job {jid} {state}; log {cell.log_path}"))
        elif record.get("ok") is False:
            rows.append((cell, "failed", f"exit {record.get('returncode')}; log {cell.log_path}"))
        elif record and locks.is_locked(cell.save_dir):
            rows.append((cell, "running", f"local pid {locks.holder(cell.save_dir)}"))
        else:
            rows.append((cell, "pending", "interrupted" if record else ""))
    return rows


def _where(record: dict) -> str:
    if record.get("slurm_job_id"):
        return f"SLURM job {record['slurm_job_id']}"
    return ""


def format_status(rows) -> str:
    width = max((len(c.key) for c, _, _ in rows), default=0)
    lines = [f"{state:<9}  {cell.key:<{width}}  {detail}".rstrip() for cell, state, detail in rows]
    counts = {s: sum(1 for _, st, _ in rows if st == s) for s in STATUS_ORDER}
    lines.append(f"{len(rows)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)
