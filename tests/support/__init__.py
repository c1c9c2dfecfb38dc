"""What many tests share: FHIR resource builders and code systems (`resources`), bearer tokens
and the HTTP calls of a FHIR client (`clients`), and a clock the tests move (`clock`)."""
