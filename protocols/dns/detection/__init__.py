"""DNS threat detection (issue #17): the ``dns`` detector plugin (entry point
``pybeat.detectors: dns``) and the ``dns_features`` enrichment processor. Imports only
``pybeat.api`` and libraries."""
