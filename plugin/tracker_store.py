"""Rasa's SQL tracker store with connections checked before use, so a PostgreSQL restart costs no turn.

Rasa 3.6's `SQLTrackerStore` pools connections without checking them. After
PostgreSQL restarts (or fails over) every pooled connection is dead; the next
turn's read fails, and Rasa's `FailSafeTrackerStore` then answers the turn from an
empty in-memory tracker and the save that follows appends nothing the database
keeps: a turn answered (acknowledged) and lost. `pool_pre_ping` makes SQLAlchemy
test a connection as it leaves the pool and replace a dead one, so the first turn
after the restart reads the real tracker (tests/e2e/test_scale.py drills it).

endpoints.scale.yml:

    tracker_store:
      type: plugin.tracker_store.SQLTrackerStore
      dialect: postgresql
      ...                     # Rasa's own SQL tracker store keys
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore as RasaSQLTrackerStore
from rasa.core.tracker_store import create_engine_kwargs


class SQLTrackerStore(RasaSQLTrackerStore):
    """Rasa's `SQLTrackerStore` (same tables, same keys) whose pool tests each connection before use."""

    engine: sa.engine.Engine

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        url = self.engine.url  # the working database, after Rasa created it from `login_db`
        self.engine.dispose()
        self.engine = sa.create_engine(url, pool_pre_ping=True, **create_engine_kwargs(url))
        self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
