"""What specops records: the state store (what is deployed, rollouts included) and the audit log."""
