"""The run's shared synthetic accounts: registered once per run, leased to one test at a time.

A target allows few registrations per client and minute (the Learning Assistant ships 30) and
few logins per account (10), so a run cannot register an account for every check that needs
a logged-in user. The pool registers an account the first time no pooled one is free, logs it
in once, and lends it - with its token - to one test at a time: a check that writes a profile
never meets another check's write, and with xdist the workers share the pool through a
registry file in the state dir (mode 0600: it holds the accounts' passwords and tokens), each
lease an exclusive ``flock`` on the account's own lock file. A lease prefers the account with
the fewest logins in the target's current window, and a new account is registered when every
free one is near its login limit. The controller deletes every pooled account at the end of
the run (:func:`delete_pool`).

Checks whose subject is a new account (registration, logout, deletion) still register their
own (:meth:`postdeploy.users.UserFactory.register`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from postdeploy.users import SyntheticUser

if TYPE_CHECKING:
    import httpx

    from postdeploy.budget import WindowBudget
    from postdeploy.config import Target

#: The registry's permissions: it holds the pooled accounts' passwords and tokens.
REGISTRY_MODE = 0o600
#: A free account with this many logins left in the window or fewer is passed over.
LOGIN_HEADROOM = 3


def registry_path(state_dir: Path, run_id: str, target: str) -> Path:
    return state_dir / "accounts" / f"{run_id}-{target}.json"


def pool_for(target: Target, run_id: str, client: httpx.Client) -> AccountPool:
    """The run's pool on ``target``; new accounts are registered and logged in via ``client``
    (the target's, paced by its traffic budget)."""
    from postdeploy import paths
    from postdeploy.http import login_budget
    from postdeploy.users import UserFactory

    return AccountPool(
        registry_path(paths.state_dir(), run_id, target.name),
        make=UserFactory(client, run_id).for_the_pool,
        logins=login_budget(target),
    )


@dataclass
class Lease:
    """One pooled account lent to one test; :meth:`close` gives it back."""

    user: SyntheticUser
    _lock: IO[bytes] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


@dataclass
class AccountPool:
    """The pooled accounts of one run on one target."""

    registry: Path
    #: registers and logs in a new account (the target's client, paced by its budget)
    make: Callable[[], SyntheticUser]
    #: the target's login window, to spread explicit logins over the accounts (None: no limit)
    logins: WindowBudget | None = None

    def lease(
        self, exclude: Sequence[str] = (), make: Callable[[], SyntheticUser] | None = None
    ) -> Lease:
        """A pooled account no other test holds and not in ``exclude`` (e-mail addresses);
        a new one is made by ``make`` when given (the asking test's client: its exchanges are
        that test's evidence), else by the pool's own."""
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        with self._locked_registry() as handle:
            accounts = _read(handle)
            free = []
            for index, user in enumerate(accounts):
                if user.email in exclude:
                    continue
                lock = self._try_lock(index)
                if lock is not None:
                    free.append(Lease(user, lock))
            used = {id(lease): self._logins_used(lease.user) for lease in free}
            best = min(free, key=lambda lease: used[id(lease)], default=None)
            for other in free:
                if other is not best:
                    other.close()
            if best is not None and not self._near_login_limit(used[id(best)]):
                return best
            if best is not None:
                best.close()
            # none free (or all near their login limit): one more account for the pool
            user = (make or self.make)()
            accounts.append(user)
            _write(handle, accounts)
            lock = self._try_lock(len(accounts) - 1)
            assert lock is not None  # nobody else knows the new account yet
            return Lease(user, lock)

    def accounts(self) -> list[SyntheticUser]:
        if not self.registry.exists():
            return []
        with self._locked_registry() as handle:
            return _read(handle)

    def _logins_used(self, user: SyntheticUser) -> int:
        """``user``'s logins in the target's current window (0 without a login limit)."""
        if self.logins is None:
            return 0
        from postdeploy.budget import account_key

        return self.logins.used(account_key(user.email))

    def _near_login_limit(self, used: int) -> bool:
        return self.logins is not None and used > self.logins.limit - LOGIN_HEADROOM

    def _locked_registry(self) -> IO[str]:
        fd = os.open(self.registry, os.O_RDWR | os.O_CREAT, REGISTRY_MODE)
        handle = os.fdopen(fd, "r+")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def _try_lock(self, index: int) -> IO[bytes] | None:
        path = self.registry.with_name(f"{self.registry.stem}-{index}.lock")
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle


def _read(handle: IO[str]) -> list[SyntheticUser]:
    handle.seek(0)
    try:
        rows = json.loads(handle.read() or "[]")
        return [SyntheticUser(**row) for row in rows]
    except (ValueError, TypeError):
        return []


def _write(handle: IO[str], accounts: list[SyntheticUser]) -> None:
    rows = [
        {"email": u.email, "password": u.password, "name": u.name, "id": u.id, "token": u.token}
        for u in accounts
    ]
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(rows))
    handle.flush()


def delete_pool(target: Target, run_id: str, state_dir: Path) -> list[str]:
    """Delete every pooled account of the run on ``target``, and the registry with its lock
    files; the addresses that could not be deleted (also warned about, with how to clean up)."""
    from postdeploy.http import new_client
    from postdeploy.users import UserFactory

    registry = registry_path(state_dir, run_id, target.name)
    if not registry.exists():
        return []
    pool = AccountPool(registry, make=_no_new_accounts)
    with new_client(target) as client:
        factory = UserFactory(client, run_id)
        factory.created = pool.accounts()
        leftovers = factory.cleanup()
    for path in registry.parent.glob(f"{registry.stem}*"):
        with suppress(OSError):
            path.unlink()
    return leftovers


def _no_new_accounts() -> SyntheticUser:
    raise RuntimeError("the account pool is being deleted")
