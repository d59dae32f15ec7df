"""Audit chain, KPIs over a generated history, maintenance bookkeeping and users."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from central.service import CentralService, WorkflowError
from central.store.db import Database
from central.store.models import AuditRecord
from gridwatch.clock import FakeClock
from gridwatch.contract.enums import Condition, Level, Resolution, UserRole

from .conftest import ENGINEER, OFFICER, OPERATOR, SUPERVISOR, transition


def test_every_workflow_step_is_audited_and_the_chain_verifies(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock))
    service.ack("a1", OFFICER, "on it")
    service.comment("a1", OPERATOR, "camera shows a fox")
    records, _ = service.audit()
    assert [(r["action"], r["actor"], r["target"]) for r in records] == [
        ("alert.comment", "op-zhang", "alert:a1"),
        ("alert.ack", "off-li", "alert:a1"),
    ]
    assert records[1]["data"]["note"] == "on it" and records[0]["prev_hash"] == records[1]["hash"]
    assert service.audit_verify() == {"ok": True, "records": 2, "first_bad": None}


def test_audit_pagination(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock))
    for i in range(5):
        service.comment("a1", OPERATOR, f"note {i}")
    page1, cursor = service.audit(limit=3)
    page2, end = service.audit(limit=3, cursor=cursor)
    assert [r["seq"] for r in page1 + page2] == [5, 4, 3, 2, 1] and end is None
    assert service.audit(since=clock.now() + timedelta(seconds=1))[0] == []


def test_tampering_is_detected(service: CentralService, db: Database, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock))
    service.ack("a1", OFFICER)
    service.comment("a1", OPERATOR, "honest note")
    service.resolve("a1", OFFICER, Resolution.REAL, None, steps_done=[])
    with db.write() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(actor="someone-else"))
    assert service.audit_verify() == {"ok": False, "records": 2, "first_bad": 2}


def test_deleting_the_newest_record_is_detected(service: CentralService, db: Database, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock))
    service.ack("a1", OFFICER)
    service.comment("a1", OPERATOR, "to be erased")
    with db.write() as session:
        session.execute(AuditRecord.__table__.delete().where(AuditRecord.seq == 2))
    assert service.audit_verify()["ok"] is False


def test_concurrent_writers_keep_one_chain(service: CentralService, clock: FakeClock) -> None:
    for i in range(4):
        service.ingest_alert("edge-a", transition(clock, f"a{i}", subject=f"s{i}"))

    def writer(alert_id: str) -> None:
        for n in range(5):
            service.comment(alert_id, OPERATOR, f"{alert_id} {n}")

    threads = [threading.Thread(target=writer, args=(f"a{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert service.audit_verify() == {"ok": True, "records": 20, "first_bad": None}


def test_kpi_on_a_generated_history(service: CentralService, clock: FakeClock) -> None:
    start = clock.now()
    # a flood: 12 yard alarms in the first 10 minutes, 3 of them one subject within 60 s (chattering)
    for i in range(12):
        subject = "door-7" if i < 3 else f"other-{i}"
        service.ingest_alert(
            "edge-a",
            transition(
                clock,
                f"f{i}",
                rule="access.door_held",
                level=Level.MEDIUM,
                zone="yard",
                subject=subject,
                ts=start + timedelta(seconds=20 * i),
            ),
        )
    # perimeter north: 4 alarms later on, resolved real / nuisance / nuisance / false
    for i, res in enumerate([Resolution.REAL, Resolution.NUISANCE, Resolution.NUISANCE, Resolution.FALSE]):
        service.ingest_alert(
            "edge-a",
            transition(clock, f"n{i}", zone="north", subject=f"n{i}", ts=start + timedelta(hours=1, minutes=15 * i)),
        )
        service.resolve(f"n{i}", OFFICER, res, None)
    # two walk tests on north, one of which saw a detection
    clock.set(start + timedelta(hours=3))
    service.start_walk_test("north", ENGINEER, 10)
    service.ingest_alert(
        "edge-a", transition(clock, "w1", zone="north", subject="wt", suppressed="walk_test", ts=clock.advance(60))
    )
    clock.advance(3600)
    service.start_walk_test("north", ENGINEER, 10)
    # a standing alarm: active for more than 24 h
    service.ingest_alert(
        "edge-a", transition(clock, "old", zone="south", subject="old", ts=start - timedelta(hours=30))
    )
    now = clock.advance(1200)
    kpi = service.kpi(now, window_s=86400)
    assert kpi["site"]["alarms"] == 16 and kpi["site"]["per_10min_peak"] == 12
    assert kpi["per_zone"]["yard"]["alarms"] == 12 and kpi["per_area"]["ward-1"]["alarms"] == 16
    assert kpi["floods"]["count"] == 1 and kpi["floods"]["windows"][0]["alarms"] == 12
    assert kpi["chattering"] == [
        {"rule": "access.door_held", "subject": "zone:door-7", "activations": 3, "max_in_60s": 3}
    ]
    assert [a["id"] for a in kpi["standing"]["alerts"]] == ["old"]
    north = kpi["perimeter"]["north"]
    assert (north["alarms"], north["nuisance_rate"], north["false_alarm_rate"]) == (4, 0.5, 0.25)
    assert (north["walk_tests"], north["walk_tests_detected"], north["probability_of_detection"]) == (2, 1, 0.5)
    assert kpi["perimeter"]["south"]["probability_of_detection"] is None
    assert kpi["operators"]["off-li"]["actions"] == 4
    with pytest.raises(WorkflowError):
        service.kpi(now, window_s=1)


def test_maintenance_and_walk_test_bookkeeping(service: CentralService, clock: FakeClock) -> None:
    until = clock.now() + timedelta(hours=2)
    with pytest.raises(WorkflowError) as err:
        service.set_out_of_service("ir-n-1", OFFICER, until, "fence repair")
    assert err.value.status == 403
    with pytest.raises(WorkflowError) as err:
        service.set_out_of_service("ghost", ENGINEER, until, "fence repair")
    assert err.value.status == 404
    item = service.set_out_of_service("ir-n-1", ENGINEER, until, "fence repair")
    assert item["out_of_service_until"] == until.isoformat()
    service.tick(clock.advance(7201))
    assert service.devices()[0]["out_of_service_until"] is None
    service.set_out_of_service("ir-n-1", ENGINEER, clock.now() + timedelta(hours=1), "again")
    assert service.set_in_service("ir-n-1", SUPERVISOR)["out_of_service_until"] is None
    with pytest.raises(WorkflowError) as err:
        service.start_walk_test("north", ENGINEER, 0)
    assert err.value.status == 422
    with pytest.raises(WorkflowError) as err:
        service.start_walk_test("nowhere", ENGINEER, 5)
    assert err.value.status == 404
    test = service.start_walk_test("north", ENGINEER, 15)
    assert test["until"] == (clock.now() + timedelta(minutes=15)).isoformat()
    actions = [r["action"] for r in service.audit()[0]]
    assert actions.count("device.out_of_service") == 2 and "zone.walk_test" in actions
    assert "device.in_service" in actions
    assert service.audit_verify()["ok"]


def test_users(service: CentralService) -> None:
    service.sync_config_users()
    actor = service.authenticate("op-zhang", "op-secret")
    assert actor is not None and actor.role is UserRole.OPERATOR
    assert service.authenticate("op-zhang", "wrong") is None
    assert service.authenticate("eng-ma", "") is None  # empty password in config: not created
    assert service.authenticate("nobody", "x") is None
    service.ensure_admin("admin-pw")
    service.ensure_admin("other-pw")  # does not overwrite
    assert service.authenticate("admin", "admin-pw") is not None
    assert service.authenticate("admin", "other-pw") is None
    service.create_user("sup-2", "pw-2", "supervisor")
    with pytest.raises(WorkflowError) as err:
        service.create_user("sup-2", "pw-3", "supervisor")
    assert err.value.status == 409
    with pytest.raises(WorkflowError) as err:
        service.create_user("bad name", "pw", "supervisor")
    assert err.value.status == 422
    service.sync_config_users()  # second run changes nothing
    assert service.audit_verify()["ok"]


def test_ready(service: CentralService) -> None:
    assert service.ready() is True


def test_cleared_condition_does_not_block_closing_medium(service: CentralService, clock: FakeClock) -> None:
    service.ingest_alert("edge-a", transition(clock, level=Level.MEDIUM, state=Condition.ACTIVE))
    service.resolve("a1", OPERATOR, Resolution.TEST, None)
    assert service.close("a1", SUPERVISOR)["workflow"] == "closed"
