"""`python -m reassembly_trigger.local.simulation.fault_run`."""

import sys

from reassembly_trigger.local.simulation.fault_run.cli import main

sys.exit(main())
