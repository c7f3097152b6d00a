"""Monitoring validation - Logs being collected: a request can be found in the platform's logs."""

from __future__ import annotations

import secrets
import time

from postdeploy.contract import PATHS, REQUEST_ID_HEADER
from postdeploy.monitoring.logs import wait_for_line


def test_a_request_appears_in_the_collected_logs(api, target, run_id, log_source):
    request_id = f"pd-{run_id}-log-{secrets.token_hex(6)}"
    started = time.time()
    response = api.get(PATHS.health, headers={REQUEST_ID_HEADER: request_id})
    echoed = response.headers.get(REQUEST_ID_HEADER)
    assert echoed == request_id, (
        f"GET {PATHS.health} with {REQUEST_ID_HEADER}: {request_id} answered "
        f"{REQUEST_ID_HEADER}: {echoed!r}; the request id must be kept to find the request's log"
    )
    wait_for_line(log_source, request_id, target.monitoring.log_wait_s, started)
