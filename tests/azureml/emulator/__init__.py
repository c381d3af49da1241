"""An Azure ML emulator built from Azure's own runtime parts (issue 10, part 1).

`workspace.Workspace`: a real `mlflow server` standing in for the workspace's MLflow tracking and
model registry, behind a proxy that refuses what Azure ML's MLflow does not support.
`jobs.run_pipeline_job`: runs a rendered PipelineJob YAML (loaded with the SDK's own `load_job`)
node by node, the way Azure ML runs it. A test harness, not product code.
"""
