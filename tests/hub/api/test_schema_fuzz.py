"""Schema fuzzing (issue 16 §4): schemathesis drives every operation of the OpenAPI schema.

It runs in process against the WSGI app, on PostgreSQL, with a user who owns
a published model and holds an API key with every scope, so requests get past
authentication into the views. Each call runs in a savepoint, so one request
that aborts the transaction cannot fail the ones after it.

Checks: no 5xx, and every status and content type the API answers is in the
schema. Bounded: FUZZ_EXAMPLES examples per operation (default 3, derandomized
so a run is repeatable) and FUZZ_SECONDS for the whole run (default 60).
"""
from __future__ import annotations

import os
import time

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance

from tests.support.builders import make_published_model

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
# Wall-clock budget for all operations together; those left when it is spent are skipped (and say so).
BUDGET_SECONDS = float(os.environ.get("FUZZ_SECONDS", "60"))
_started: list[float] = []


def _app():
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", _app())


@pytest.fixture(autouse=True)
def _one_connection(db):
    """As Django's test client does: the test's transaction lives on one
    connection, which the end of a request would otherwise close."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def fuzz_owner(django_db_setup, django_db_blocker):
    """Made once for all operations (a password hash and a stored file cost about a second each)."""
    from hub.accounts.models import User
    from hub.accounts.services import api_key_create

    with django_db_blocker.unblock():
        owner = User.objects.create(username="fuzz", email="fuzz@example.com")
        make_published_model(owner, "Fuzz Target")
        key = api_key_create(user=owner, name="fuzz", scopes=["read", "download", "upload", "run"])
    yield {"Authorization": f"Bearer {key.plaintext}"}
    with django_db_blocker.unblock():
        from hub.catalog.models import Model

        for model in Model.objects.filter(owner=owner):
            model.versions.all().delete()
            model.delete()
        owner.delete()


@pytest.fixture
def fuzz_headers(fuzz_owner, db):
    _started[:] = _started or [time.monotonic()]
    if time.monotonic() - _started[0] > BUDGET_SECONDS:
        pytest.skip(f"the {BUDGET_SECONDS:g}s fuzzing budget is spent (FUZZ_SECONDS raises it)")
    return fuzz_owner


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_no_5xx_and_only_what_it_documents(case, fuzz_headers):
    with transaction.atomic():
        case.call_and_validate(
            headers=fuzz_headers,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance],
        )
        transaction.set_rollback(True)
