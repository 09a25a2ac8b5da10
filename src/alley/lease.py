"""The lease lock around every command that writes, and the heartbeat that keeps it.

The store provides the race-safe primitives (see ``HistoryStore.try_lock``); this
module waits for a busy lock (bounded, saying who holds it), renews the lease from a
background thread while migrations run, and tells the runner when the lease is lost.

A holder never trusts its own wall clock. It does trust elapsed time on its monotonic
clock: if more than a lease passed since the start of its last successful renewal
(the process was paused, or the server unreachable), the lease is considered lost
even if nobody took it yet, because somebody may be about to.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alley.errors import AlleyWarning, LockBusy
from alley.model import HistoryStore, Holder, LockState

# The holder gives up its lease this much before the server would call it expired.
SAFETY_MARGIN = 0.2


def make_holder(command: str) -> Holder:
    """Who this process is, for the lock and the run log."""
    from alley import __version__

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Holder(
        run_id=uuid.uuid4().hex[:12],
        host=socket.gethostname(),
        pid=os.getpid(),
        user=user,
        alley_version=__version__,
        command=command,
    )


def describe_lock(state: LockState) -> str:
    """``held by ada@web-1 pid 42 (up, run 3f…) since 12:00:01 UTC, lease 30s``."""
    since = state.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if state.released:
        return f"free (last held by {state.holder.describe()})"
    if state.expired:
        return f"expired (held by {state.holder.describe()} since {since})"
    return (
        f"held by {state.holder.describe()} since {since}; "
        f"lease ends in {max(state.expires_in_s, 0):.0f}s unless renewed"
    )


class Lease:
    """A held lock generation, renewed by a heartbeat thread until released."""

    def __init__(
        self,
        store: HistoryStore,
        state: LockState,
        renewed_at: float,
        call: Callable[..., object],
    ) -> None:
        self.store = store
        self.state = state
        self.generation = state.generation
        self._lease_s = state.lease_s
        self._renewed_at = renewed_at
        self._lost_reason: str | None = None
        self._failed_renewal: str | None = None
        self._stop = threading.Event()
        self._call = call
        self._thread = threading.Thread(target=self._beat, name="alley-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        interval = max(self._lease_s / 3, 0.05)
        while not self._stop.wait(interval):
            started = time.monotonic()
            if started - self._renewed_at > self._lease_s * (1 - SAFETY_MARGIN):
                self._lost_reason = "the lease ran out before it could be renewed"
                return
            try:
                still_ours = bool(self._call(self.store.renew_lock, self.generation))
            except Exception as error:
                # Not lost yet: the next renewal may succeed within the lease. If none
                # does, the monotonic check in check() stops the run, with this reason.
                self._failed_renewal = str(error)
                continue
            if not still_ours:
                self._lost_reason = "it was released ('alley unlock --force') or taken over"
                return
            self._renewed_at = started
            self._failed_renewal = None

    def check(self) -> None:
        """Raise :class:`LockBusy` if the lease is (or may be) lost; call before each step."""
        overdue = time.monotonic() - self._renewed_at > self._lease_s * (1 - SAFETY_MARGIN)
        if overdue and not self._lost_reason:
            self._lost_reason = "the lease ran out" + (
                f" (renewing failed: {self._failed_renewal})" if self._failed_renewal else ""
            )
        reason = self._lost_reason
        if reason:
            raise LockBusy(
                f"lost the lock: {reason}; stopped before the next migration",
                hint="see 'alley history' and 'alley status'",
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


@contextmanager
def hold_lock(
    store: HistoryStore,
    holder: Holder,
    *,
    lease_s: float,
    wait_s: float,
    call: Callable[..., object] = lambda function, *args: function(*args),
    on_wait: Callable[[LockState], None] | None = None,
) -> Iterator[Lease]:
    """Take the lock (waiting at most ``wait_s``), keep it alive, release it at the end.

    :param call: Runs each store call (the hook layer passes one that names a failing
        plugin).
    :param on_wait: Told once who holds the lock when this process starts waiting.
    :raises LockBusy: still held by someone else after ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    poll = min(1.0, max(lease_s / 10, 0.05))
    told = False
    while True:
        attempt_started = time.monotonic()
        state = call(store.try_lock, holder, lease_s)
        assert isinstance(state, LockState)
        if state.holder.run_id == holder.run_id:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockBusy(
                f"the lock is {describe_lock(state)}",
                hint="try again later, raise --lock-timeout, or 'alley unlock' if that run is dead",
            )
        if on_wait is not None and not told:
            on_wait(state)
            told = True
        time.sleep(min(poll, remaining))

    lease = Lease(store, state, attempt_started, call)
    lease.start()
    try:
        yield lease
    finally:
        lease.stop()
        try:
            call(store.release_lock, lease.generation)
        except Exception as error:
            # The error that brought us here matters more; the lease expires on its own.
            warnings.warn(
                AlleyWarning(
                    f"could not release the lock ({error}); it frees itself when the "
                    f"{lease_s:g}s lease runs out"
                ),
                stacklevel=1,
            )
