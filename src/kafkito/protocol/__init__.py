"""Sans-I/O protocol code: bytes in, typed messages out, and back. No asyncio, files or clock."""
