"""Helpers shared by the test suites: real servers on loopback, paths to the local venvs."""
