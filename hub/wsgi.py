import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
# Web processes cap each SQL statement (DB_STATEMENT_TIMEOUT_MS); workers do not.
os.environ.setdefault("MERGEWORKS_ROLE", "web")
application = get_wsgi_application()
