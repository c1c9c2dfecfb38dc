"""Encrypted, replicated object storage (docs/storage.md): so far encryption at rest
(`encryption`) and the organisations' key-encryption keys (`keyring`)."""
