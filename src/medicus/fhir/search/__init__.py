"""FHIR search: index extraction from the official search parameters, and query building."""
