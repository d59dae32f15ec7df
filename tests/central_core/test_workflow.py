"""Workflow (CONTRACT §4.1): the pure table and the service paths, including every refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from central.service import CentralService, WorkflowError
from central.workflow import TRANSITIONS, Actor, AlertFacts, Command, decide
from gridwatch.clock import FakeClock
from gridwatch.contract.enums import Condition, Level, Resolution, UserRole, WorkflowState

from .conftest import ADMIN, ENGINEER, OFFICER, OPERATOR, SUPERVISOR, Published, transition

W = WorkflowState
NOW = FakeClock().now()


@pytest.mark.parametrize("command", list(Command))
@pytest.mark.parametrize("state", list(WorkflowState))
def test_decide_follows_the_table(command: Command, state: WorkflowState) -> None:
    sources, target = TRANSITIONS[command]
    facts = AlertFacts(state, Condition.CLEARED, Level.MEDIUM)
    actor = Actor("admin", UserRole.ADMIN)
    until = NOW + timedelta(hours=1)
    if state in sources:
        assert decide(facts, command, actor, NOW, shelve_until=until) == (target or state)
    else:
        with pytest.raises(WorkflowError) as err:
            decide(facts, command, actor, NOW, shelve_until=until)
        assert err.value.status == 409


@pytest.mark.parametrize(
    ("role", "command", "allowed"),
    [
        (UserRole.OFFICER, Command.ACK, True),
        (UserRole.OFFICER, Command.RESOLVE, True),
        (UserRole.OFFICER, Command.SHELVE, False),
        (UserRole.OFFICER, Command.CLOSE, False),
        (UserRole.OPERATOR, Command.SHELVE, True),
        (UserRole.OPERATOR, Command.CLOSE, False),
        (UserRole.SUPERVISOR, Command.CLOSE, True),
        (UserRole.ADMIN, Command.CLOSE, True),
        (UserRole.ENGINEER, Command.ACK, False),
        (UserRole.ENGINEER, Command.COMMENT, False),
    ],
)
def test_roles(role: UserRole, command: Command, allowed: bool) -> None:
    state = W.RESOLVED if command is Command.CLOSE else W.NEW
    facts = AlertFacts(state, Condition.CLEARED, Level.LOW)
    run = lambda: decide(facts, command, Actor("u", role), NOW, shelve_until=NOW + timedelta(minutes=5))  # noqa: E731
    if allowed:
        run()
    else:
        with pytest.raises(WorkflowError) as err:
            run()
        assert err.value.status == 403


def test_full_path_new_to_closed(service: CentralService, clock: FakeClock, published: Published) -> None:
    assert service.ingest_alert("edge-a", transition(clock))
    clock.advance(5)
    assert service.ack("a1", OFFICER, "seen")["workflow"] == "acknowledged"
    assert service.dispatch("a1", OPERATOR, "off-li")["workflow"] == "dispatched"
    steps = ["look at camera", "send patrol", "report"]
    item = service.resolve("a1", OFFICER, Resolution.REAL, "caught", steps_done=steps)
    assert item["workflow"] == "resolved" and item["resolution"] == "real"
    assert service.close("a1", SUPERVISOR)["workflow"] == "closed"
    detail = service.get_alert("a1")
    actions = [h["action"] for h in detail["history"]]
    assert actions == ["raised", "ack", "dispatch", "resolve", "close"]
    assert detail["history"][1]["actor"] == "off-li" and detail["history"][1]["note"] == "seen"
    assert all(s["done"] for s in detail["response_plan"]["steps"])
    workflow_states = [d["workflow"] for d in published.of("alert")]
    assert workflow_states[-4:] == ["acknowledged", "dispatched", "resolved", "closed"]
    assert not published.of("escalation")


def test_ack_and_dispatch_may_be_skipped(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock, "a1"))
    service.ingest_alert("edge-a", transition(clock, "a2"))
    assert service.dispatch("a1", OFFICER, "off-li")["workflow"] == "dispatched"
    assert service.resolve("a2", OFFICER, "nuisance", None)["workflow"] == "resolved"


def test_forbidden_transitions(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock, "a1", level=Level.HIGH))
    cases = [
        (lambda: service.ack("nope", OPERATOR), 404),
        (lambda: service.close("a1", SUPERVISOR), 409),  # not resolved yet
        (lambda: service.ack("a1", ENGINEER), 403),
        (lambda: service.shelve("a1", OFFICER, clock.now() + timedelta(minutes=5), "drill"), 403),
        (lambda: service.shelve("a1", OPERATOR, clock.now() - timedelta(minutes=5), "drill"), 422),
        (lambda: service.shelve("a1", OPERATOR, clock.now() + timedelta(minutes=5), ""), 422),
        (lambda: service.dispatch("a1", OPERATOR, "bad officer!"), 422),
        (lambda: service.resolve("a1", OPERATOR, "maybe", None), 422),
        (lambda: service.resolve("a1", OPERATOR, "real", None, steps_done=["dance"]), 422),
        (lambda: service.comment("a1", OPERATOR, "  "), 422),
    ]
    for call, status in cases:
        with pytest.raises(WorkflowError) as err:
            call()
        assert err.value.status == status, err.value.detail
    service.ack("a1", OPERATOR)
    with pytest.raises(WorkflowError) as err:
        service.ack("a1", OPERATOR)
    assert err.value.status == 409
    service.resolve("a1", OPERATOR, Resolution.REAL, None, steps_done=["look at camera", "send patrol", "report"])
    with pytest.raises(WorkflowError) as err:
        service.close("a1", OPERATOR)
    assert err.value.status == 403
    with pytest.raises(WorkflowError) as err:
        service.close("a1", SUPERVISOR)  # high and still active
    assert err.value.status == 409
    with pytest.raises(WorkflowError) as err:
        service.dispatch("a1", OPERATOR, "off-li")
    assert err.value.status == 409
    service.ingest_alert("edge-a", transition(clock, "a1", level=Level.HIGH, state=Condition.CLEARED))
    assert service.close("a1", ADMIN)["workflow"] == "closed"
    for call in (lambda: service.ack("a1", OPERATOR), lambda: service.resolve("a1", OPERATOR, "real", None)):
        with pytest.raises(WorkflowError) as err:
            call()
        assert err.value.status == 409
    assert service.comment("a1", OFFICER, "closed but noted")["workflow"] == "closed"
    # refusals leave no trace in history
    assert [h["action"] for h in service.get_alert("a1")["history"]] == [
        "raised",
        "ack",
        "resolve",
        "cleared",
        "close",
        "comment",
    ]


def test_resolving_with_steps_unchecked_is_recorded_and_notifies_the_supervisor(
    service: CentralService, clock: FakeClock, published: Published
) -> None:
    service.ingest_alert("edge-a", transition(clock))
    service.resolve("a1", OFFICER, Resolution.FALSE, "beam misaligned", steps_done=["look at camera"])
    detail = service.get_alert("a1")
    skipped = [h for h in detail["history"] if h["action"] == "steps_skipped"]
    assert skipped and skipped[0]["skipped"] == ["send patrol", "report"]
    assert [s["done"] for s in detail["response_plan"]["steps"]] == [True, False, False]
    notices = [e for e in published.of("escalation") if e["kind"] == "steps_skipped"]
    assert notices == [notices[0]] and notices[0]["supervisor"] == "sup-wang" and notices[0]["to"] == "area:ward-1"


def test_shelve_returns_to_previous_state_when_time_passes(
    service: CentralService, clock: FakeClock, published: Published
) -> None:
    service.ingest_alert("edge-a", transition(clock, level=Level.LOW))
    service.ack("a1", OPERATOR)
    item = service.shelve("a1", OPERATOR, clock.now() + timedelta(minutes=10), "maintenance on fence")
    assert item["workflow"] == "shelved"
    with pytest.raises(WorkflowError) as err:
        service.ack("a1", OPERATOR)
    assert err.value.status == 409
    service.tick(clock.advance(599))
    assert service.get_alert("a1")["workflow"] == "shelved"
    service.tick(clock.advance(2))
    detail = service.get_alert("a1")
    assert detail["workflow"] == "acknowledged" and detail["shelved_until"] is None
    assert detail["history"][-1]["action"] == "unshelve" and detail["history"][-1]["actor"] == "system"
    assert published.of("alert")[-1]["workflow"] == "acknowledged"


def test_ids_with_a_trailing_newline_are_refused() -> None:
    """`$` in a regex also matches before a final newline; ids are checked with fullmatch."""
    from central.domain.checks import check_id
    from central.workflow import WorkflowError

    with pytest.raises(WorkflowError) as err:
        check_id("officer", "op-li\n")
    assert err.value.status == 422
