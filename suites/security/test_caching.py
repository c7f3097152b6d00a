"""Security validation - private caching: a user's data is never stored by a shared cache.

The cacheability of every user-data answer is judged on any target (RFC 9111, see
``postdeploy.security.caching``); on a target behind a caching edge (``security.edge``) two
users and an anonymous caller also ask in turn, and each must get their own answer.
"""

from __future__ import annotations

import pytest

from postdeploy.contract import PATHS, USER_DATA_PATHS
from postdeploy.expect import expect_status, json_body
from postdeploy.security.caching import private_caching_problem, someone_elses_answer

#: How often the first user asks before the others (a cache may store on the second ask).
PRIMING_REQUESTS = 2


@pytest.mark.deploy_check("private_caching")
def test_a_users_data_is_never_storable_by_a_shared_cache(api, security_users):
    problems = []
    for path in USER_DATA_PATHS:
        response = api.get(path, headers=security_users.main.auth)
        expect_status(response, 200, what="reading the synthetic user's own data")
        if problem := private_caching_problem(response):
            problems.append(problem)
    assert not problems, "\n".join(problems)


@pytest.mark.deploy_check("edge_caching")
def test_the_edge_never_serves_one_users_answer_to_another(api, target, security_users, new_user):
    if not target.security.edge:
        pytest.skip(f"target {target.name} has no caching edge (security.edge = false)")
    first, user = security_users.main, new_user()
    for _ in range(PRIMING_REQUESTS):
        expect_status(api.get(PATHS.me, headers=first.auth), 200, what="the first user")
    others = {"the first user": first.email}
    second = api.get(PATHS.me, headers=user.auth)
    expect_status(second, 200, what="the second user reading their own account")
    problem = someone_elses_answer(second, "the second user", others)
    assert problem is None, problem
    assert json_body(second).get("email") == user.email, (
        f"GET {second.url} for the second user answered another account: {second.text[:200]}"
    )
    anonymous = api.get(PATHS.me)
    problem = someone_elses_answer(anonymous, "an anonymous caller", others)
    assert problem is None, problem
    expect_status(anonymous, 401, what="an anonymous caller after two users")
