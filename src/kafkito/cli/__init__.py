"""The kafkito command line."""
