"""The tooling tier (the command line, the simulations and the benchmark) runs against a
real moto server: its fixtures (`moto_endpoint`, `resources`, `pipeline`, `invoke`,
`faults`, `adv`, ...) are `tests/moto_fixtures.py`'s, kept out of the unit tier."""

from moto_fixtures import *  # noqa: F403
