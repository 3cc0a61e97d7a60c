"""Append-only, tamper-evident audit trail and the support-staff views over it."""
