"""The two ways a bench script ends early (besides an interrupt), each with its own exit code."""

from __future__ import annotations


class BenchError(Exception):
    """The bench could not run (exit 1)."""


class Prereq(Exception):
    """A prerequisite is missing (exit 2)."""
