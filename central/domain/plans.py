"""Response plans: the checklist per rule (config `response_plans`) and what was done of it.

Resolving an alert records the steps done; skipping any notifies the area (see `actions`), and
`get_alert` shows each step with its state from the latest resolve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from central.store.models import WorkflowEntry
from central.workflow import WorkflowError


def skipped_steps(plans: dict[str, list[str]], rule: str, done: list[str]) -> list[str]:
    """The plan's steps not in `done`, in plan order; 422 if `done` names a step the plan lacks."""
    plan = plans.get(rule, [])
    unknown = [s for s in done if s not in plan]
    if unknown:
        raise WorkflowError(422, f"steps not in the response plan of {rule}: {unknown}")
    return [s for s in plan if s not in done]


def plan_status(plans: dict[str, list[str]], rule: str, entries: Sequence[WorkflowEntry]) -> dict[str, Any] | None:
    """The rule's plan with `done` per step as of the latest resolve; None for a rule without one."""
    plan = plans.get(rule)
    if not plan:
        return None
    done: set[str] = set()
    for e in entries:
        if e.action == "resolve":
            done = set(e.data.get("steps_done", []))
    return {"rule": rule, "steps": [{"step": step, "done": step in done} for step in plan]}
