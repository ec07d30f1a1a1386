# gunicorn reads ./gunicorn.conf.py by default: every gunicorn started from the
# repository root (infra/scripts/run-hub.sh, the Docker image, tests, benches)
# gets the hub's settings, key redaction in the logs first of all.
from hub.gunicorn_conf import *  # noqa: F401,F403
