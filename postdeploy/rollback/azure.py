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

Logs come from Log Analytics, not from Kudu: the app's ``AppServiceConsoleLogs`` (sent to a
workspace by a diagnostic setting) are queried with ``POST /v1/workspaces/{id}/query`` - a
documented, bounded (``timespan``, ``take``) JSON API that works the same for every plan and
OS and for scaled-out instances, where Kudu's log files are per instance and container-only.
It needs a token for ``https://api.loganalytics.io`` in ``log_token_env``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from postdeploy.redact import public_host
from postdeploy.rollback._http import (
    USER_AGENT,
    EnvBearerAuth,
    RestDriver,
    TransientDriverError,
    status_error,
    transport_error,
)
from postdeploy.rollback.base import (
    LOG_WINDOW_S,
    Call,
    DriverError,
    DriverUnavailable,
    Release,
    log_line,
)

API_VERSION = "2023-12-01"
PRODUCTION = "production"
RUNNING = "Running"
ASYNC_RUNNING = frozenset({"InProgress", "Running", "Accepted", "Started"})
ASYNC_FAILED = frozenset({"Failed", "Canceled", "Cancelled"})
DEFAULT_LOG_ANALYTICS_URL = "https://api.loganalytics.io"
DEFAULT_LOG_TOKEN_ENV = "AZURE_LOG_ANALYTICS_TOKEN"  # noqa: S105 - a variable name
#: The most rows one logs query takes.
LOG_ROWS_MAX = 1000


class AppServiceDriver(RestDriver):
    platform = "azure"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the URL ARM gave to follow the swap operation
        self._operation_url = ""
        self._logs_client: httpx.Client | None = None

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

    # -- logs: the Log Analytics query API --------------------------------------------------

    @property
    def log_token_env(self) -> str:
        return str(self.target.settings.get("log_token_env") or DEFAULT_LOG_TOKEN_ENV)

    def _log_settings(self) -> tuple[str, str]:
        """The Log Analytics API base and workspace id; DriverUnavailable without them."""
        workspace = str(self.target.settings.get("log_analytics_workspace_id") or "")
        where = f"azure: target {self.target.name!r}"
        if not workspace:
            raise DriverUnavailable(
                f"{where}: its logs are read from Log Analytics: send the app's "
                "AppServiceConsoleLogs there (a diagnostic setting), then set "
                "log_analytics_workspace_id (the workspace's customer id) in targets.toml"
            )
        if not self.target.secret("log_token_env"):
            raise DriverUnavailable(
                f"{where}: ${self.log_token_env} is not set; put a Log Analytics access token in "
                "it (`az account get-access-token --resource https://api.loganalytics.io`)"
            )
        url = str(self.target.settings.get("log_analytics_url") or DEFAULT_LOG_ANALYTICS_URL)
        return url.rstrip("/"), workspace

    def log_query(self, limit: int) -> str:
        """The KQL of the production slot's console lines of the last :data:`LOG_WINDOW_S` s."""
        return (
            f'AppServiceConsoleLogs | where _ResourceId =~ "{self._site_path}" '
            f"| where TimeGenerated > ago({LOG_WINDOW_S}s) "
            "| project TimeGenerated, ResultDescription "
            f"| order by TimeGenerated desc | take {limit}"
        )

    def _log_client(self) -> httpx.Client:
        if self._logs_client is None:
            self._logs_client = httpx.Client(
                auth=EnvBearerAuth(lambda: self.target.secret("log_token_env"), self.log_token_env),
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=httpx.Timeout(self.target.timeout_s, connect=self.target.connect_timeout_s),
                follow_redirects=False,
                transport=self._transport,
            )
        return self._logs_client

    def logs(self, limit: int = 200) -> list[str]:
        """The production slot's console log lines, oldest first: a Log Analytics query
        (``POST {log_analytics_url}/v1/workspaces/{id}/query``) of ``AppServiceConsoleLogs``
        bounded by a ``timespan`` and ``take``; its own token (``log_token_env``), as an ARM
        token is not valid for Log Analytics."""
        url, workspace = self._log_settings()
        take = max(1, min(limit, LOG_ROWS_MAX))
        what = f"azure: querying Log Analytics workspace {workspace} (target {self.target.name!r})"
        try:
            response = self._log_client().post(
                f"{url}/v1/workspaces/{workspace}/query",
                json={"query": self.log_query(take), "timespan": f"PT{LOG_WINDOW_S}S"},
            )
        except DriverUnavailable as exc:
            raise DriverUnavailable(f"{what}: {exc}") from None
        except httpx.TransportError as exc:
            raise transport_error(
                exc, what=what, host=public_host(url), timeout_s=self.target.timeout_s
            ) from None
        token = self.target.secret("log_token_env")
        if response.is_error:
            raise status_error(
                response, what=what, token_env=self.log_token_env,
                not_found_hint="check log_analytics_workspace_id (the workspace's customer id)",
                secrets=(token,) if token else (),
            )  # fmt: skip
        try:
            tables = response.json().get("tables")
            table = tables[0]
            names = [str(column.get("name")) for column in table["columns"]]
            stamp, text = names.index("TimeGenerated"), names.index("ResultDescription")
            rows = list(table["rows"])
        except (ValueError, AttributeError, LookupError, TypeError):
            raise DriverError(
                f"{what} answered without a result table of TimeGenerated and "
                "ResultDescription; check log_analytics_url"
            ) from None
        lines = [log_line(row[stamp], row[text]) for row in reversed(rows)]
        return lines[-limit:] if limit else []

    def close(self) -> None:
        super().close()
        if self._logs_client is not None:
            self._logs_client.close()
            self._logs_client = None

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
