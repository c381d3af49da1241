"""The local online-endpoint server: Azure ML's scoring protocol over the registry's models.

`prepare` + `serve` (server.py) run it; keys.py manages its keys; read_log
(inference_log.py) reads what it answered, joined with feedback.
"""
