"""What a local invocation of the trigger is made of, for every tool and test that makes one:
the items it reads (`items`), the stream records it is given (`records`), the Lambda
context (`contexts`) and environment (`environment`) it runs in, the output it writes
(`logs`) and the trigger itself on clients a test can make faulty (`triggers`)."""
