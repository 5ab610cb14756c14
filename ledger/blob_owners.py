"""Which users may read which stored files (the HTTP API serves blobs to their owners only)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ledger.db import reading
from ledger.rows import insert_ignore
from ledger.schema import BlobOwner
from ledger.values import utcnow


class BlobOwners:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def grant(self, user_id: str, sha256s: Iterable[str]) -> None:
        with Session(self.engine) as s, s.begin():
            for sha in set(sha256s):
                insert_ignore(
                    s, BlobOwner, {"sha256": sha, "user_id": user_id, "created_at": utcnow()}
                )

    def owns(self, user_id: str, sha256: str) -> bool:
        with Session(reading(self.engine)) as s:
            return s.get(BlobOwner, (sha256, user_id)) is not None

    def owners(self, sha256: str) -> set[str]:
        with Session(reading(self.engine)) as s:
            return set(s.scalars(select(BlobOwner.user_id).where(BlobOwner.sha256 == sha256)))
