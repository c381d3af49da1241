"""specops: GitOps for machine-learning operations."""
