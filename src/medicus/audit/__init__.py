"""Audit and security: the tamper-evident trail of every access (Cybersicherheitsdienste)."""
