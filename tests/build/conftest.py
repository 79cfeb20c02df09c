"""The build tier (the zip, the Terraform module and the locks) checks the zip's handler
and the module's filters against a real moto server: its fixtures (`moto_endpoint`,
`resources`, `pipeline`, `invoke`, ...) are `tests/moto_fixtures.py`'s, kept out of the
unit tier."""

from moto_fixtures import *  # noqa: F403
