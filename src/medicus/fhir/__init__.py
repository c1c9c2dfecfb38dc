"""The FHIR R4 hub for patients' core data (Drehscheibe für Kerndaten)."""
