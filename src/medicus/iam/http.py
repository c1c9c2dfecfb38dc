"""Transitional: the bearer-token dependency lives in `iam.bearer` (an `http` module of its own
collided with `core.http`). Only fhir/routes.py still imports it from here; this module goes
when that import moves."""

from medicus.iam.bearer import bearer_principal as bearer_principal
