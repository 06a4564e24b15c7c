"""Stand-in for pycuda (see tests/fakes/README.md)."""
