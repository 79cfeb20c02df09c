"""The emulated AWS: the embedded moto stack, the latency proxy, fault injection, call counting."""
