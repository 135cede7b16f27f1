"""Jobdeck's benchmark suite: `./jobdeck bench` (or `python -m bench`). Not tests."""
