"""Schema-driven fuzzing from the service's own OpenAPI document (schemathesis, bounded)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.slow

# "Schema-valid data must be accepted" does not apply: any bytes match `format: binary`, and
# most bytes are not an image. Everything else must hold for every generated request.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 25


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_generated_requests_get_documented_non_5xx_answers(server: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"POST /predict", "POST /predict_batch", "GET /metadata"} <= {op.label for op in operations}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # GET operations take no input to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS, timeout=30)

        fuzz()
