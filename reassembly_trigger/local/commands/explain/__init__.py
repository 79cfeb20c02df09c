"""`explain`: each job's story from the Lambda's logs (`story.py`), told by `cli.py`."""
