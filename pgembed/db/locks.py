"""Bounded waits for pgembed's own transactions on a user's table, and retries instead of long queues.

A transaction that waits for a table lock makes every later statement on that table wait behind it: an ALTER
TABLE stuck behind one long reader stalls all the application's writers. So each of pgembed's transactions on
a user's table (adding a codec's columns, regenerating its trigger, activating a version, a backfill batch)
waits at most LOCK_TIMEOUT for its locks; past that, or on a deadlock, it rolls back, pauses and starts again,
until GIVE_UP_AFTER has passed with no success. Inside the application's own transaction there is nothing to
retry: the work runs once, under the application's settings."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from pgembed.db.session import Session
from pgembed.errors import LockBusyError
from pgembed.statements.rows import LOCK_TIMEOUT as SET_LOCK_TIMEOUT

T = TypeVar("T")

LOCK_TIMEOUT = "1s"  # the longest an application's statement queues behind one of pgembed's lock requests
GIVE_UP_AFTER = 120.0  # seconds of failed attempts before LockBusyError
RETRIED = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)


def bounded(session: Session, work: Callable[[], T], *, what: str, finish: str,
            on_retry: Callable[[], None] = lambda: None) -> T:
    """Run `work` in a transaction whose lock waits are bounded, again after a pause while they time out or
    deadlock. `what` names the work and `finish` the call that completes it, for the error after
    GIVE_UP_AFTER; `on_retry` forgets what a rolled-back attempt cached."""
    if session.in_transaction:
        with session.transaction():
            return work()
    deadline = time.monotonic() + GIVE_UP_AFTER
    attempt = 0
    while True:
        try:
            with session.transaction():
                session.execute(SET_LOCK_TIMEOUT, (LOCK_TIMEOUT,))
                return work()
        except RETRIED as err:
            on_retry()
            if time.monotonic() > deadline:
                raise LockBusyError(
                    f"{what}: other transactions held the locks it needs for {GIVE_UP_AFTER:.0f} s "
                    f"({err.diag.message_primary}); nothing was changed by the last attempt; {finish}") from err
            attempt += 1
            time.sleep(min(2.0, 0.02 * 2 ** attempt) * random.uniform(0.5, 1.5))
