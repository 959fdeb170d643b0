"""The REST API described: route descriptions and the OpenAPI document built from them.

:mod:`.model` is the vocabulary, one module per API area holds the descriptions
(``OPERATIONS``), :mod:`.schemas` the named schemas, :mod:`.document` joins them with the
routing table.
"""
