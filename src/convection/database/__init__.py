"""The transactional core: transactions with read sets, queries, pagination, the committer
(OCC + group commit), the write log and subscriptions. See docs/internals/transactions.md."""

from __future__ import annotations

from convection.database.database import Database
from convection.database.query import Query
from convection.database.retry import run_in_transaction
from convection.database.subscriptions import Subscription
from convection.database.transaction import Transaction

__all__ = ["Database", "Query", "Subscription", "Transaction", "run_in_transaction"]
