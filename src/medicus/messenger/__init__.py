"""The messenger: a TI-Messenger-compatible Matrix service (docs/messenger.md). Synapse,
unmodified and in its own process, is the homeserver; medicus writes its configuration, logs its
users in, keeps the directory of who is reachable, and stands in front of it as the
Messenger-Proxy that enforces the invite rules."""
