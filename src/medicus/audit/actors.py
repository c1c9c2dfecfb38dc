"""How the audit trail names who acted when no person or client did."""

OPERATOR = "system:cli"
"""The operator at the command line (`medicus admin`, `medicus storage`)."""
