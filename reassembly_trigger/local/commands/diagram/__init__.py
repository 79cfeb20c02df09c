"""`diagram`: docs/state-diagram.md drawn from the machine (`state_diagram.py`),
written or checked by `cli.py`."""
