"""gunicorn settings the hub needs wherever it runs (loaded by the repository's gunicorn.conf.py).

Access and error lines go through hub.logredact, so a `?token=` key or a part
URL's signature is never written in plain text.
"""
logger_class = "hub.logredact.GunicornLogger"
