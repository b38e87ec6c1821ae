"""Exposition: the state out to the world, over HTTP (``/metrics``, ``/failures``), behind TLS and auth.

``collector`` renders the state at scrape time; ``http_server`` serves it; ``webconfig`` and
``webserve`` apply the exporter-toolkit web config (TLS, basic auth) to it and to the relay.
"""
