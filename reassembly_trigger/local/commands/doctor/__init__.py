"""`doctor`: why a job did (or didn't) reassemble, and what to do about it.

`diagnosis.py` (the verdict, the repair, the re-send), `dry_run.py` (the machine on
gateways that cannot write), `resend.py` (the re-send's writes, kept out of the zip),
`preflight.py` (`--preflight`: every call the functions make, tried); `cli.py` shows them.
"""
