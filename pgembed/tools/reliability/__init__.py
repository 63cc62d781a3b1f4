"""Reliability suites: the soak test (an application under load through a re-fit) and the crash suite."""
