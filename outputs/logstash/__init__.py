"""``output.logstash``: Beats' Logstash output (Lumberjack protocol v2)."""
