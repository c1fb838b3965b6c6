"""Property-based fuzzing of every route from the served OpenAPI document (schemathesis), with all of its checks:
no server error (but 503/504, which a busy machine may give and the document declares), and every answer is one
the document declares (status, media type, error body), valid requests are accepted and invalid ones refused.

A bounded pass of ``st run --checks all`` (the full command is in ``tests/api/schemathesis_hooks.py``): a few
positive and negative cases per route, with the token limits cut by those hooks so the real model answers quickly.
"""

from __future__ import annotations

from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings as hsettings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

import tests.api.schemathesis_hooks  # noqa: E402,F401  (registers the hooks and the json-object format)
from app.api import ApiServer  # noqa: E402
from tests.api.conftest import TOKEN  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = 3  # per route and mode: about 70 cases, about a minute with the starter model on 2 cores


def test_every_route_conforms_to_the_served_document(server: ApiServer, settings) -> None:
    settings.max_body_bytes = 256 * 1024
    settings.request_timeout = 20.0  # a reply slowed by a busy machine is a 504, which the document declares
    schema = schemathesis.openapi.from_url(server.address + "/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: Counter = Counter()
    assert len(operations) >= 13

    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if operation.body or operation.path_parameters:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            @given(case=operation.as_strategy(generation_mode=mode))
            @hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                       database=None, phases=[Phase.explicit, Phase.generate])
            def check(case) -> None:
                response = case.call_and_validate(headers=headers, timeout=60, excluded_checks=[not_a_server_error])
                seen[(case.method, case.path, mode.value, response.status_code)] += 1
                assert response.status_code < 500 or response.status_code in (503, 504), \
                    f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
                assert "Traceback" not in response.text

            check()
    # the fuzzing reached generation, not only validation errors
    assert any(method == "POST" and status == 200 for method, _, _, status in seen), seen
    assert any(mode == "negative" and status == 400 for _, _, mode, status in seen), seen
