"""The bottom layer: paths, atomic file I/O, the lock, the clock, durations.

Every package of specops may import it; it imports nothing of specops but
`specops.errors`. A test (tests/architecture/test_layers.py) keeps it that way.
"""
