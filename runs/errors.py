"""What the run services raise when a request about a run cannot be carried out."""

from __future__ import annotations


class RunError(Exception):
    """A request about a run that cannot be carried out; the message says why."""


class RunInputError(RunError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class ResumeInputConflict(RunInputError):
    """An input was given for the node a run resumes at, but re-executed nodes feed it (its `input` field)."""


class RunFinishedError(RunError):
    """The run already ended (for cancel: 409)."""
