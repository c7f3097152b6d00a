"""Rollback driver for Azure App Service, through Azure Resource Manager (``api_url``).

A deploy to App Service goes to the staging slot and is swapped into production; after the
swap, the staging slot holds what production ran before. Rolling back is swapping them back.

- releases: the production slot and the staging slot (``slot``), newest first: each one's
  ``GET .../sites/{app}[/slots/{slot}]`` (state, last change) and ``.../config/web`` (the
  container image, ``linuxFxVersion``)
- current:  the production slot
- rollback: ``POST .../sites/{app}/slots/{slot}/slotsswap`` with
  ``{"targetSlot": "production", "preserveVnet": true}`` - asynchronous: 202 Accepted and a
  ``Location`` (or ``Azure-AsyncOperation``) URL to poll
- wait:     that URL until the swap is done, then production's ``linuxFxVersion`` until it is
  the one the staging slot had

The token is an ARM access token (``az account get-access-token``, or workload identity in
CI) for a principal with ``Microsoft.Web/sites/slots/slotsswap/action`` on the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from postdeploy.rollback._http import RestDriver, TransientDriverError
from postdeploy.rollback.base import Call, DriverError, Release

API_VERSION = "2023-12-01"
PRODUCTION = "production"
RUNNING = "Running"
ASYNC_RUNNING = frozenset({"InProgress", "Running", "Accepted", "Started"})
ASYNC_FAILED = frozenset({"Failed", "Canceled", "Cancelled"})


class AppServiceDriver(RestDriver):
    platform = "azure"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the URL ARM gave to follow the swap operation
        self._operation_url = ""

    def not_found_hint(self) -> str:
        return (
            f"ARM knows no app {self.app!r} (or slot {self.slot!r}) in resource group "
            f"{self.target.setting('resource_group')!r} of this subscription; check "
            "subscription_id, resource_group, app_name and slot in targets.toml"
        )

    @property
    def app(self) -> str:
        return str(self.target.setting("app_name"))

    @property
    def slot(self) -> str:
        return str(self.target.setting("slot"))

    @property
    def _site_path(self) -> str:
        s = self.target.settings
        return (
            f"/subscriptions/{s['subscription_id']}/resourceGroups/{s['resource_group']}"
            f"/providers/Microsoft.Web/sites/{self.app}"
        )

    def _slot_path(self, slot: str) -> str:
        return self._site_path if slot == PRODUCTION else f"{self._site_path}/slots/{slot}"

    def _get(self, path: str, what: str) -> Mapping[str, Any]:
        body = self._request("GET", path, params={"api-version": API_VERSION}, what=what)
        return body if isinstance(body, Mapping) else {}

    def _slot_release(self, slot: str) -> Release:
        site = self._get(self._slot_path(slot), f"reading slot {slot} of app {self.app}")
        config = self._get(f"{self._slot_path(slot)}/config/web", f"reading the config of {slot}")
        props = site.get("properties") or {}
        fx = str((config.get("properties") or {}).get("linuxFxVersion") or "")
        return Release(
            id=slot,
            version=fx.rsplit(":", 1)[-1] if ":" in fx else fx,
            ref=fx,
            status=str(props.get("state") or ""),
            created_at=str(props.get("lastModifiedTimeUtc") or ""),
            can_rollback=slot != PRODUCTION and props.get("state") == RUNNING,
            extra={"slot": slot},
        )

    def releases(self) -> Sequence[Release]:
        return [self._slot_release(PRODUCTION), self._slot_release(self.slot)]

    def current(self) -> Release:
        return self._slot_release(PRODUCTION)

    def _swap_path(self) -> str:
        return f"{self._site_path}/slots/{self.slot}/slotsswap"

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"POST {self.api_url}{self._swap_path()}?api-version={API_VERSION} "
                f'{{"targetSlot": "{PRODUCTION}", "preserveVnet": true}} {self._bearer_note()}'
            ),
            Call(
                f"GET the Location / Azure-AsyncOperation URL every {self.poll_interval_s:g} s "
                f"until the swap is done, then GET {self.api_url}{self._site_path}/config/web "
                f"until production runs {to.ref or to.id}"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        if to.id != self.slot:
            raise DriverError(
                f"azure: a rollback swaps slot {self.slot!r} into production; {to.id!r} is not "
                "that slot - set slot in targets.toml to the slot that holds the old release"
            )
        if not to.can_rollback:
            raise DriverError(
                f"azure: slot {self.slot} of {self.app} is {to.status or 'not running'}; start "
                "it before swapping it into production"
            )
        response = self._send(
            "POST", self._swap_path(), params={"api-version": API_VERSION},
            json={"targetSlot": PRODUCTION, "preserveVnet": True},
            what=f"swapping slot {self.slot} of {self.app} into production",
        )  # fmt: skip
        self._operation_url = self._trusted(
            response.headers.get("Azure-AsyncOperation") or response.headers.get("Location") or ""
        )
        return Release(
            id=PRODUCTION, version=to.version, ref=to.ref, status="swapping",
            created_at=to.created_at, extra={"slot": PRODUCTION, "from_slot": self.slot},
        )  # fmt: skip

    def _trusted(self, url: str) -> str:
        """``url`` if it points at ``api_url``'s host: the bearer token goes nowhere else."""
        if not url:
            return ""
        parts, api = urlsplit(url), urlsplit(self.api_url)
        if (parts.scheme, parts.netloc) != (api.scheme, api.netloc):
            raise DriverError(
                f"azure: the swap answered with a polling URL on {parts.netloc!r}, not on "
                f"{api.netloc!r}; postdeploy does not send the token there - check the swap in "
                "the Azure portal"
            )
        return url

    def _operation_done(self) -> bool:
        response = self._send("GET", self._operation_url, what="following the slot swap")
        if response.status_code == 202:
            return False
        body: Any = response.json() if response.content else {}
        status = str(body.get("status", "")) if isinstance(body, Mapping) else ""
        if status in ASYNC_RUNNING:
            return False
        if status in ASYNC_FAILED:
            error = body.get("error") or {}
            raise DriverError(
                f"azure: the swap of slot {self.slot} into production {status.lower()}: "
                f"{error.get('message') or 'see the activity log of the app'}"
            )
        return True

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        def serving() -> bool:
            if self._operation_url:
                if not self._operation_done():
                    return False
                self._operation_url = ""
            production = self._slot_release(PRODUCTION)
            if production.status and production.status != RUNNING:
                raise TransientDriverError(f"production is {production.status}")
            return not release.ref or production.ref == release.ref

        return self._wait(serving, timeout_s)
