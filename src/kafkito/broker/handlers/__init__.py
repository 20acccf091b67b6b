"""One module per Kafka API; each opens with the versions it serves and what they add."""
