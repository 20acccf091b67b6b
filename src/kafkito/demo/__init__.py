"""The seed's example, running: real-time user activity tracking (`kafkito demo`)."""

from kafkito.demo.runner import Demo, DemoOptions, DemoReport, run_demo

__all__ = ["Demo", "DemoOptions", "DemoReport", "run_demo"]
