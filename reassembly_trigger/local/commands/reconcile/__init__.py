"""`reconcile`: every job in flight, diagnosed and repaired (`fleet.py`), shown by `cli.py`."""
