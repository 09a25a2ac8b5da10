"""The lease lock around every command that writes, its heartbeat, and the fence.

The store provides the race-safe primitives (:class:`alley.store.Lock`); this module
waits for a busy lock (bounded, saying who holds it), renews the lease from a
background thread while migrations run, and fences every write of the run: once the
lease is (or may be) lost, the run writes nothing more.

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
from collections.abc import Callable

from alley.errors import AlleyError, ExitCode, LockBusy
from alley.model import Holder, LockState
from alley.store import Lock

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


class LeaseLost(LockBusy):
    """This run no longer holds its lease: it stopped, and wrote nothing after the loss."""


class StepUnrecorded(AlleyError):
    """A step finished after its run lost the lease, so it was not recorded."""

    exit_code = ExitCode.LEASE_LOST


Clock = Callable[[], float]


class Lease:
    """A held lock generation, renewed by a heartbeat thread until released.

    The fence: :meth:`fence` is called before every write a run makes. It passes only
    while the last renewal that the store confirmed began less than ``lease_s *
    (1 - SAFETY_MARGIN)`` ago on this process's monotonic clock. A renewal is
    confirmed when the store says the generation is still the newest; nobody can take
    the lock over until ``lease_s`` after that renewal on the store's clock, so a
    write sent within the margin cannot race a takeover.

    :param renew: Renews the generation (``Lock.renew_lock``); ``False`` = lost.
    :param clock: The monotonic clock (injectable for tests).
    :param beat: Whether to start the heartbeat thread (tests call :meth:`beat`).
    """

    def __init__(
        self,
        state: LockState,
        renew: Callable[[int], bool],
        renewed_at: float,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state = state
        self.generation = state.generation
        self._lease_s = state.lease_s
        self._renew = renew
        self._clock = clock
        self._renewed_at = renewed_at
        self._lost_reason: str | None = None
        self._failed_renewal: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="alley-heartbeat", daemon=True)

    @property
    def interval_s(self) -> float:
        return max(self._lease_s / 3, 0.05)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self.beat():
                return

    def beat(self) -> bool:
        """Renew once; ``False`` once the lease is lost (no more renewals will help)."""
        started = self._clock()
        if self._overdue(started):
            self._lost_reason = "the lease ran out before it could be renewed" + (
                f" (renewing failed: {self._failed_renewal})" if self._failed_renewal else ""
            )
            return False
        try:
            still_ours = self._renew(self.generation)
        except Exception as error:
            # Not lost yet: the next renewal may succeed within the lease. If none
            # does, the fence stops the run, with this reason.
            self._failed_renewal = str(error).splitlines()[0] if str(error) else repr(error)
            return True
        if not still_ours:
            self._lost_reason = "it was released ('alley unlock --force') or taken over"
            return False
        self._renewed_at = started
        self._failed_renewal = None
        return True

    def _overdue(self, now: float) -> bool:
        return now - self._renewed_at > self._lease_s * (1 - SAFETY_MARGIN)

    @property
    def lost(self) -> str | None:
        """Why the lease is (or may be) lost, or ``None`` while it holds."""
        if self._lost_reason is None and self._overdue(self._clock()):
            self._lost_reason = "the lease ran out" + (
                f" (renewing failed: {self._failed_renewal})" if self._failed_renewal else ""
            )
        return self._lost_reason

    def fence(self) -> None:
        """Raise :class:`LeaseLost` unless this run may still write as the lock's holder."""
        reason = self.lost
        if reason:
            raise LeaseLost(
                f"lost the lock: {reason}; stopped, and wrote nothing more",
                hint="see 'alley status' and 'alley history'",
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def acquire(
    store: Lock,
    holder: Holder,
    *,
    lease_s: float,
    wait_s: float,
    on_wait: Callable[[LockState], None] | None = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take the lock, waiting at most ``wait_s``; the lease is not yet renewed.

    :param on_wait: Told once who holds the lock when this process starts waiting.
    :raises LockBusy: still held by someone else after ``wait_s``.
    """
    deadline = clock() + wait_s
    poll = min(1.0, max(lease_s / 10, 0.05))
    told = False
    while True:
        attempt_started = clock()
        state = store.try_lock(holder, lease_s)
        if state.holder.run_id == holder.run_id:
            return Lease(state, store.renew_lock, attempt_started, clock=clock)
        remaining = deadline - clock()
        if remaining <= 0:
            raise LockBusy(
                f"the lock is {describe_lock(state)}",
                hint="try again later, raise --lock-timeout, or 'alley unlock' if that run is dead",
            )
        if on_wait is not None and not told:
            on_wait(state)
            told = True
        sleep(min(poll, remaining))
