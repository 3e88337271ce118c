"""Schemathesis against the API's OpenAPI document (ASGI, real database): no request may cause a 5xx.

Each operation is called with a token of the role it is meant for (manager of WMP, researcher of P1, admin),
so the fuzzing reaches the queries rather than stopping at 401.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from service.api import create_app
from tests.access.access_support import World, bearer

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES = {"positive": 15, "negative": 8}


def _token_for(world: World, path: str) -> str:
    if path.startswith("/v1/forces/"):
        return world.managers["WMP"]
    if path.startswith("/v1/projects/"):
        return world.researchers["P1"]
    return world.admin


def _fuzz(operation: Any, world: World, mode: Any, examples: int) -> None:
    token = _token_for(world, operation.path)

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=bearer(token))
        case.validate_response(response, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:
        # negative mode: an operation without parameters or body has nothing to break
        assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("mode", ["positive", pytest.param("negative", marks=pytest.mark.slow)])
def test_no_server_errors(world: World, mode: str) -> None:
    """Every operation of the OpenAPI document, positive and negative data: never a 5xx."""
    app = create_app(world.api_url, world.outbox, pool_size=2, admin_database_url=world.admin_api_url)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        _fuzz(operation, world, schemathesis.GenerationMode(mode), EXAMPLES[mode])
