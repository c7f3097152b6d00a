"""Synthetic users: a test's own (registered with a run-unique prefix, deleted afterwards) or
leased from the run's account pool (:mod:`postdeploy.accounts`, given back afterwards)."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from postdeploy.contract import PATHS
from postdeploy.expect import expect_status
from postdeploy.gate import BackendError

#: Synthetic accounts are ``pd-<run id>-<random>@SYNTHETIC_DOMAIN``.
SYNTHETIC_DOMAIN = "example.com"
SYNTHETIC_PREFIX = "pd-"


class CleanupWarning(UserWarning):
    """A synthetic user could not be deleted from the target."""


@dataclass
class SyntheticUser:
    email: str
    password: str = field(repr=False)
    name: str
    id: object = None
    token: str = field(default="", repr=False)

    @property
    def auth(self) -> dict[str, str]:
        """Bearer authorization headers for this user."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def credentials(self) -> dict[str, str]:
        return {"email": self.email, "password": self.password}


class Lease(Protocol):
    """An account lent to one test (:class:`postdeploy.accounts.Lease`)."""

    user: SyntheticUser

    def close(self) -> None: ...


class AccountSource(Protocol):
    """Where pooled accounts come from (:class:`postdeploy.accounts.AccountPool`)."""

    def lease(
        self, exclude: Sequence[str] = (), make: Callable[[], SyntheticUser] | None = None
    ) -> Lease: ...


class UserFactory:
    """Synthetic users for one test: leased from ``pool`` (when there is one) or registered;
    at :meth:`cleanup` the leased ones go back and every registered one is deleted."""

    def __init__(
        self, client: httpx.Client, run_id: str, pool: AccountSource | None = None
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.pool = pool
        self.created: list[SyntheticUser] = []
        self.leases: list[Lease] = []

    def new_email(self) -> str:
        # random, not a counter: xdist workers share the run id
        return f"{SYNTHETIC_PREFIX}{self.run_id}-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"

    def register(self, name: str = "Synthetic Learner") -> SyntheticUser:
        """Register a new account (not logged in), for a check whose subject is a new account.
        Fails the test if registration does not work."""
        user = SyntheticUser(self.new_email(), secrets.token_urlsafe(18), name)
        response = self.client.post(PATHS.register, json={**user.credentials, "name": name})
        expect_status(response, 201, what="registering a synthetic user")
        user.id = response.json().get("id")
        self.created.append(user)
        return user

    def login(self, user: SyntheticUser) -> SyntheticUser:
        response = self.client.post(PATHS.login, json=user.credentials)
        expect_status(response, 200, what=f"logging in synthetic user {user.email}")
        user.token = response.json()["access_token"]
        self.client.cookies.clear()
        return user

    def fresh(self, name: str = "Synthetic Learner") -> SyntheticUser:
        """A new registered and logged-in account of this test alone (one it may delete)."""
        return self.login(self.register(name))

    def __call__(self, name: str = "Synthetic Learner") -> SyntheticUser:
        """A registered and logged-in user no other running test holds: a pooled account
        (another one at each call within the test), or a fresh one without a pool."""
        if self.pool is None:
            return self.fresh(name)
        lease = self.pool.lease(
            exclude=[held.user.email for held in self.leases], make=self.for_the_pool
        )
        self.leases.append(lease)
        return lease.user

    def for_the_pool(self) -> SyntheticUser:
        """A new account for the pool, registered through this factory's client (a test's:
        then its evidence); the pool's accounts are deleted by the controller at the end of
        the run, not by this factory."""
        user = self.fresh("Pooled Learner")
        self.created.remove(user)
        return user

    def _pooled(self, user: SyntheticUser) -> bool:
        return any(held.user is user for held in self.leases)

    def delete(self, user: SyntheticUser) -> httpx.Response:
        """Delete ``user``'s account through the API (what a check of deletion calls); only
        an account of this test's own (:meth:`fresh`, :meth:`register`), never a pooled one."""
        if self._pooled(user):
            raise ValueError(f"{user.email} is a pooled account: delete only a fresh() one")
        response = self.client.delete(PATHS.account, headers=user.auth)
        if response.status_code == 204:
            self.created.remove(user)
        return response

    def cleanup(self) -> list[str]:
        """Give the leased accounts back and delete every account this factory registered;
        returns the ones that could not be deleted."""
        for lease in self.leases:
            lease.close()
        self.leases.clear()
        leftovers = []
        for user in self.created:
            try:
                if not self._delete(user):
                    leftovers.append(user.email)
            except (httpx.HTTPError, BackendError):  # unreachable, or rate-limited
                leftovers.append(user.email)
        if leftovers:
            warnings.warn(
                CleanupWarning(
                    f"{len(leftovers)} synthetic user(s) could not be deleted: "
                    f"{', '.join(leftovers)}; delete accounts matching "
                    f"{SYNTHETIC_PREFIX}{self.run_id}-*@{SYNTHETIC_DOMAIN} by hand"
                ),
                stacklevel=2,
            )
        self.created.clear()
        return leftovers

    def _delete(self, user: SyntheticUser) -> bool:
        if user.token:
            response = self.client.delete(PATHS.account, headers=user.auth)
            if response.status_code in (204, 404):
                return True
        # the test may have logged out or the token expired: log in afresh
        response = self.client.post(PATHS.login, json=user.credentials)
        self.client.cookies.clear()
        if response.status_code != 200:
            return False
        token = response.json().get("access_token", "")
        response = self.client.delete(PATHS.account, headers={"Authorization": f"Bearer {token}"})
        return response.status_code in (204, 404)
