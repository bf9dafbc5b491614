"""``output.elasticsearch``: Elasticsearch 7/8/9, OpenSearch 1-3 and Elastic Cloud.

Public pieces: :mod:`.plugin` (the ``pybeat.outputs`` entry point), :mod:`.cloudid`
(``cloud.id``/``cloud.auth``) and :mod:`.admin` (template, ILM/ISM policy, ``test output``).
"""
