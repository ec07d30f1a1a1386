import pytest

from hub.catalog.models import Download
from tests.support.builders import make_published_model


@pytest.mark.worker
def test_celery_round_trip_through_redis_with_a_real_worker(live_worker, alice, settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    from workers.tasks.housekeeping import downloads_rollup, ping

    live_worker()
    result = ping.delay("hello").get(timeout=60)
    assert result == {"pong": "hello", "db": True, "vendor": "postgresql"}

    model = make_published_model(alice, "Counted")
    version = model.versions.get()
    Download.objects.create(version=version)
    Download.objects.create(version=version)
    assert downloads_rollup.delay().get(timeout=60) == 2
    version.refresh_from_db()
    model.refresh_from_db()
    assert (version.download_count, model.download_count) == (2, 2)
