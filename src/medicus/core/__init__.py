"""Shared kernel: database, errors, HTTP plumbing, logging, metrics, ids.

Imports nothing else of medicus."""
