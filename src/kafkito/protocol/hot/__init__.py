"""Hand-written codecs for the broker's hot paths, each proven byte for byte against kio.

kio decodes and encodes every message correctly, but its pure-Python writer costs tens of
microseconds per small response and copies record payloads (KAFKA-NOTES §3). These modules
cover the three messages that carry records: the Produce request (records sliced out of the
frame as memoryviews, no copy), the Produce response, and the Fetch response (head, record
chunks and tail handed to `writelines`, no join). Tests in tests/unit/test_hot_*.py compare
every served version with kio.
"""
