def test_health_answers_ok_on_postgres(client, db):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "postgresql"}
