"""The Lambda REQUEST authorizer in front of the REST API: a presented key becomes its tenant."""
