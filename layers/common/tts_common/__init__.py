"""Code shared by every function: domain types, settings, errors, messages, storage and AWS adapters."""

__version__ = "0.1.0"
