"""The ``_deployment`` system table: deployment-wide settings every process must agree on.

One document, ``{secret: bytes}``: the instance secret admin keys and pagination cursors are
derived from. It lives in the log so that every process and node serving the deployment uses
the same secret (an admin key works on any node). Two processes starting on an empty store
both try to create it; they conflict (both read the empty table) and the second adopts the
first one's secret. User code cannot read this table (``ctx.db.system`` reads only
``_storage`` and ``_scheduled_functions``).
"""

from __future__ import annotations

from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView, Transaction

DEPLOYMENT_TABLE = "_deployment"


def read_secret(db: Database) -> bytes | None:
    txn = db.begin(read_only=True)
    return _secret_in(txn)


def _secret_in(txn: Transaction) -> bytes | None:
    doc = Query(txn, DEPLOYMENT_TABLE).first()
    return None if doc is None else bytes(doc["secret"])


def init_secret(db: Database, candidate: bytes) -> bytes:
    """The deployment's secret: the stored one, else ``candidate`` (stored in a commit)."""

    def write(txn: Transaction) -> bytes:
        found = _secret_in(txn)
        if found is not None:
            return found
        SystemView(txn).insert(DEPLOYMENT_TABLE, {"secret": candidate})
        return candidate

    stored = read_secret(db)
    if stored is not None:
        return stored
    secret, _ = db.run_system(write)
    return secret
