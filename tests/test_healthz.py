import pytest


@pytest.mark.django_db
def test_it_reports_healthy_with_the_database_and_broker_up(client, redis_server):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok" and response.json()["broker"] == "ok"


@pytest.mark.django_db
def test_it_reports_503_naming_the_broker_when_redis_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "ok" and body["broker"] == "failing"
    # Nothing about the deployment reaches an anonymous caller: no host, port or error text.
    assert "127.0.0.1" not in response.content.decode() and "s3cret" not in response.content.decode()
