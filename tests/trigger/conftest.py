"""The trigger tier (the handler, the reconciler and the API) runs against a real moto
server: its fixtures (`moto_endpoint`, `resources`, `pipeline`, `invoke`, `faults`,
`adv`, ...) are `tests/moto_fixtures.py`'s, kept out of the unit tier."""

from moto_fixtures import *  # noqa: F403
