"""The lifecycle stages `dvc repro` runs: validate, features, train, evaluate, gate, register."""
import os

# Set before great_expectations or mlflow is imported anywhere: neither may phone home from a user's pipeline.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Stage output is read in CI logs, where progress bars are noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
