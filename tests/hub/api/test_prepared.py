"""Prepared hot lookups: same answers as the ORM, robust to a reset session."""
from __future__ import annotations

import pytest
from django.db import connection

from hub.catalog.api_prepared import PreparedValuesQuery
from hub.catalog.models import Model
from tests.support.builders import make_published_model, tiny_safetensors_bytes


def test_lookups_prepare_again_after_the_session_is_reset(client, transactional_db, alice, local_storage):
    model = make_published_model(alice, "Reset", data=tiny_safetensors_bytes(5))
    model_file = model.versions.get().files.get()
    assert client.get(f"/api/v1/model-versions/by-hash/{model_file.sha256}").status_code == 200
    assert client.get(f"/api/download/models/{model_file.version_id}").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    assert client.get(f"/api/v1/model-versions/by-hash/{model_file.sha256}").status_code == 200
    assert client.get(f"/api/download/models/{model_file.version_id}").status_code == 200


def test_prepared_rows_match_the_orm(db, alice, local_storage):
    make_published_model(alice, "Alpha", data=tiny_safetensors_bytes(6))
    query = PreparedValuesQuery(
        "mw_test_models_by_owner",
        lambda owner_id: Model.objects.filter(owner_id=owner_id).values("id", "name", "allow_commercial_use"),
        (int,),
        json_fields=("allow_commercial_use",),
    )
    expected = list(Model.objects.filter(owner_id=alice.pk).values("id", "name", "allow_commercial_use"))
    assert query.rows(alice.pk) == expected
    assert query.rows(alice.pk) == expected  # the second call executes the prepared plan


def test_arguments_must_reach_the_query_unchanged(db):
    query = PreparedValuesQuery(
        "mw_test_transformed", lambda name: Model.objects.filter(name__icontains=name).values("id"), (str,)
    )
    with pytest.raises(ValueError, match="transformed"):
        query.rows("x")
