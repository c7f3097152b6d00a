"""Synthetic users: created for a test with a run-unique prefix, always deleted afterwards."""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass, field

import httpx

from postdeploy.contract import PATHS
from postdeploy.expect import expect_status

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


class UserFactory:
    """Creates synthetic users on a target and deletes every one of them at :meth:`cleanup`."""

    def __init__(self, client: httpx.Client, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.created: list[SyntheticUser] = []

    def new_email(self) -> str:
        # random, not a counter: xdist workers share the run id
        return f"{SYNTHETIC_PREFIX}{self.run_id}-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"

    def register(self, name: str = "Synthetic Learner") -> SyntheticUser:
        """Register a user (not logged in). Fails the test if registration does not work."""
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

    def __call__(self, name: str = "Synthetic Learner") -> SyntheticUser:
        """A registered and logged-in user."""
        return self.login(self.register(name))

    def delete(self, user: SyntheticUser) -> httpx.Response:
        """Delete ``user``'s account through the API (what a check of deletion calls)."""
        response = self.client.delete(PATHS.account, headers=user.auth)
        if response.status_code == 204:
            self.created.remove(user)
        return response

    def cleanup(self) -> list[str]:
        """Delete every user this factory created; returns the ones that could not be deleted."""
        leftovers = []
        for user in self.created:
            try:
                if not self._delete(user):
                    leftovers.append(user.email)
            except httpx.HTTPError:
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

