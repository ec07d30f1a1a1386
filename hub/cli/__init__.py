"""The `mergeworks` command line client.

It talks to a hub over the REST API only and never imports Django, so it runs
anywhere the package is installed, against any hub.
"""
