"""opsconsole: a terminal operations and incident-response console."""

__version__ = "0.1.0"
