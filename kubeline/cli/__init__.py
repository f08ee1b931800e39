"""The ``kubeline`` command, the local runner and its display: the top layer, which may import every other."""
