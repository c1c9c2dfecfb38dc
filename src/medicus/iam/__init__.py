"""Identity and access management: organisations, users, roles (Identitätsmanagement)."""
