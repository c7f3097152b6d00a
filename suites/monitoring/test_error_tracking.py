"""Monitoring validation - Error tracking: an error on the deployment reaches Sentry."""

from __future__ import annotations

import secrets
import time

from postdeploy.contract import ERROR_CHECK_ID_TAG, ERROR_RUN_ID_TAG, ERROR_TRIGGER_HEADER, PATHS
from postdeploy.expect import expect_error
from postdeploy.monitoring.error_tracking import trigger_token, wait_for_event


def test_an_error_on_the_deployment_reaches_error_tracking(api, target, sentry, run_id):
    settings = target.monitoring
    token = trigger_token(target)
    assert token, (
        f"no token for the test-only error route {PATHS.error_trigger}: set "
        f"${settings.error_trigger_token_env} (monitoring.error_trigger_token_env) to the "
        "deployment's LA_ERROR_TRIGGER_TOKEN"
    )
    check_id = f"pd-{run_id}-{secrets.token_hex(4)}"
    started = time.time()
    response = api.post(
        PATHS.error_trigger,
        json={"run_id": run_id, "check_id": check_id},
        headers={ERROR_TRIGGER_HEADER: token},
    )
    assert response.status_code != 404, (
        f"POST {PATHS.error_trigger} answered 404: the test-only error route is not enabled "
        "on the deployment (LA_ERROR_TRIGGER_TOKEN is not set there)"
    )
    assert response.status_code != 403, (
        f"POST {PATHS.error_trigger} answered 403: the deployment refused the token from "
        f"${settings.error_trigger_token_env}"
    )
    expect_error(response, 500)  # the synthetic error, answered in the contract's shape

    event = wait_for_event(sentry, ERROR_CHECK_ID_TAG, check_id, settings.sentry_wait_s, started)
    tags = {tag.get("key"): tag.get("value") for tag in event.get("tags", [])}
    assert tags.get(ERROR_RUN_ID_TAG) == run_id, (
        f"the event {event.get('eventID')} for check {check_id} carries "
        f"{ERROR_RUN_ID_TAG}={tags.get(ERROR_RUN_ID_TAG)!r}, expected {run_id!r}"
    )
