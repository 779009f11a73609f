"""Which modality trains at which step: the paper's Eq. 1 and the released code's per-batch order."""

from collections.abc import Sequence

SCHEDULES = ("per_batch_sequential", "round_robin")


def modalities_for_iteration(schedule: str, modalities: Sequence[str], iteration: int) -> list[str]:
    """The modalities that get their own (loss, backward, step) at ``iteration``, in order.

    - ``per_batch_sequential`` (the code, docs/method-notes.md §2): every modality, in the fixed order, each on
      the same paired batch (forward all, then one step per modality).
    - ``round_robin`` (paper Eq. 1): the single modality m_t = t mod M.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if not modalities:
        raise ValueError("no modalities given")
    if iteration < 0:
        raise ValueError(f"iteration must be non-negative, got {iteration}")
    if schedule == "per_batch_sequential":
        return list(modalities)
    return [modalities[iteration % len(modalities)]]
