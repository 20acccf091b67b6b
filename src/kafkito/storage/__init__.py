"""Durable storage: partition logs of raw record batches, indexes, recovery, the metadata log."""
