"""Monitoring: data drift between a stored baseline and production data.

`signals` is dependency-free (the spec layer imports it); `drift` holds the
numpy/scipy engine and is imported only where drift is computed.
"""
