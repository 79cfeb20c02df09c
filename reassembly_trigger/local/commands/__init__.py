"""The CLI's commands, one each, every one exposing `register(subparsers)` that sets `run`.

A command with logic of its own is a folder: `cli.py` (its options, its output) beside
the modules that do the work, which import no argparse (`doctor/`, `explain/`,
`reconcile/`, `diagram/`, `bench/`). A command that only puts a subsystem shared with
other tools on the command line is one module (`simulate` over `simulation/`, `poll`
over `streams/`, `local_up` over `aws/`, `replay` over the handler). `common.py` is
what every command shares, `transitions.py` how any of them shows a transition.
"""
