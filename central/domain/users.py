"""Central's user accounts: the first admin, users from the config, and password login.

Hashing itself is `central.users` (argon2id); this module stores accounts and audits changes.
Users listed in the config are re-synced at every start, so the config stays the source of truth
for their role and password.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central import audit as audit_log
from central.domain.checks import check_id, check_note, parse_enum
from central.domain.core import SYSTEM, Core
from central.store.models import UserRow
from central.users import hash_password, needs_rehash, verify_password
from central.workflow import Actor, WorkflowError
from gridwatch.config.models import User
from gridwatch.contract.enums import UserRole

log = logging.getLogger(__name__)


class Users:
    """Accounts in the store; failures are `WorkflowError`s (409 for a taken name, 422 for bad input)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def ensure_admin(self, password: str) -> None:
        """Create user `admin` (role admin) with this password unless it already exists."""
        check_note(password, required=True, name="password")
        with self.core.db.read() as session:
            if session.get(UserRow, "admin") is not None:
                return
        try:
            self.create_user("admin", password, UserRole.ADMIN)
        except WorkflowError as exc:
            if exc.status != 409:  # another process created it first
                raise

    def create_user(self, username: str, password: str, role: UserRole | str, name: str = "") -> None:
        """Add a user; 409 if the username is taken."""
        check_id("username", username)
        check_note(password, required=True, name="password")
        user_role = parse_enum(UserRole, "role", role)
        if user_role is None:
            raise WorkflowError(422, "`role` is required")
        now = self.core.clock.now()
        try:
            with self.core.db.write() as session:
                session.add(
                    UserRow(
                        username=username,
                        role=user_role.value,
                        name=name,
                        password_hash=hash_password(password),
                        created_at=now,
                    )
                )
                session.flush()
                audit_log.append(session, now, SYSTEM, "user.create", f"user:{username}", {"role": user_role.value})
        except IntegrityError:
            raise WorkflowError(409, f"user {username!r} exists") from None

    def authenticate(self, username: str, password: str) -> Actor | None:
        """The actor for a correct username and password, else None (timing does not reveal which was wrong)."""
        with self.core.db.read() as session:
            row = session.get(UserRow, username)
        if not verify_password(row.password_hash if row else None, password) or row is None:
            return None
        if needs_rehash(row.password_hash):  # hashing parameters were raised since this hash was made
            with self.core.db.write() as session:
                fresh = session.get(UserRow, username)
                if fresh is not None:
                    fresh.password_hash = hash_password(password)
        return Actor(row.username, UserRole(row.role))

    def sync_config_users(self) -> None:
        """Create or update `central.users` from the config; a user without a password is skipped."""
        now = self.core.clock.now()
        for user in self.core.site.central.users:
            if not user.password:
                log.info("config user %s has no password (set its ${VAR}); not created", user.username)
                continue
            self._sync_one(user, user.password, now)

    def _sync_one(self, user: User, password: str, now: datetime) -> None:
        def apply(session: Session) -> None:
            row = session.execute(select(UserRow).where(UserRow.username == user.username).with_for_update()).scalar()
            if row is None:
                session.add(
                    UserRow(
                        username=user.username,
                        role=user.role.value,
                        name=user.name,
                        password_hash=hash_password(password),
                        created_at=now,
                    )
                )
                session.flush()
                audit_log.append(
                    session,
                    now,
                    SYSTEM,
                    "user.create",
                    f"user:{user.username}",
                    {"role": user.role.value, "source": "config"},
                )
                return
            changed: dict[str, Any] = {}
            if row.role != user.role.value:
                changed["role"] = user.role.value
                row.role = user.role.value
            if not verify_password(row.password_hash, password):
                changed["password_changed"] = True
                row.password_hash = hash_password(password)
            row.name = user.name or row.name
            if changed:
                audit_log.append(
                    session, now, SYSTEM, "user.update", f"user:{user.username}", {**changed, "source": "config"}
                )

        self.core.write(apply)
