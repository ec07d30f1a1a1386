def test_health_answers_ok_on_postgres(client, db):
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["database"]["vendor"] == "postgresql"


def test_liveness_touches_nothing(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/api/v1/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
