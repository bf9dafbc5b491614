"""``output.logstash``: Beats' Logstash output (Lumberjack protocol v2).

Modules: ``protocol`` (sans-IO frames and ACKs), ``config`` (the keys), ``tls`` (``ssl.*`` and
TLS failures in words), ``connection`` (one socket: dial, send windows, await ACKs),
``output`` (batches, retries, backoff, slow start), ``plugin`` (the entry point), ``admin``
(``pybeat test output``).
"""
