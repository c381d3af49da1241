"""The spec kinds: typed, strict (unknown keys are errors), one model per kind.

Field names follow Azure ML where it has one (snake_case, `instance_type`,
`auth_mode`, ...). New kinds register themselves with `@register_kind` and the
loader, validator and JSON Schema writer pick them up.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

from croniter import croniter
from specops.core.durations import parse_duration
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

API_VERSION = "specops/v1"
KINDS: dict[str, type[Document]] = {}

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63),
    Field(description="lower-case letters, digits and '-', at most 63 characters"),
]
REF_PATTERN = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(f"invalid cron expression {value!r} (expected 5 fields: minute hour day month weekday)")
    return value


def _check_ref(value: str) -> str:
    if not REF_PATTERN.match(value):
        raise ValueError("must be a reference like ${AZURE_SUBSCRIPTION_ID}, never a literal value")
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_positive_duration(value: str) -> str:
    if parse_duration(value).total_seconds() <= 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return value


Cron = Annotated[str, AfterValidator(_check_cron), Field(description="cron expression, 5 fields")]
_DURATION_FORMS = "500ms, 30s, 5m, 1h, 7d, or ISO 8601: PT1M, P7D, P1DT12H"
Duration = Annotated[str, AfterValidator(_check_duration), Field(description=_DURATION_FORMS)]
PositiveDuration = Annotated[str, AfterValidator(_check_positive_duration), Field(description=f"more than zero: {_DURATION_FORMS}")]
EnvRef = Annotated[str, AfterValidator(_check_ref), Field(description="${VAR} reference resolved at apply time")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(Strict):
    name: Name
    labels: dict[str, str] = {}


class Document(Strict):
    """One YAML document: apiVersion, kind, metadata, spec."""

    api_version: ClassVar[str] = API_VERSION
    apiVersion: Literal["specops/v1"]
    metadata: Metadata
    if TYPE_CHECKING:
        # Every kind declares both as fields (`kind` a Literal of its name). Declared here for the type
        # checker only: as fields of the base they would move `kind` before `metadata` in every kind.
        kind: str
        spec: BaseModel

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.metadata.name}"


def register_kind(cls: type[Document]) -> type[Document]:
    kind = get_args(cls.model_fields["kind"].annotation)[0]
    KINDS[kind] = cls
    return cls


# --- Project -----------------------------------------------------------------

class AzureTarget(Strict):
    subscription_id: EnvRef
    resource_group: EnvRef
    workspace: EnvRef


class RemoteState(Strict):
    """Where an environment's records live when apply runs on machines that come and go (CI runners)."""

    account_url: str = Field(description="the blob endpoint of the storage account, e.g. "
                             "https://<account>.blob.core.windows.net (a ${VAR} reference is resolved when used)")
    container: str = Field("specops-state", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
                           description="blob container (the infra creates specops-state)")


class Promotion(Strict):
    """An environment that serves what another one trained: it runs no pipeline, and each version the source's
    rollouts promote reaches it through an Azure ML registry both workspaces share (as Azure/mlops-v2 does)."""

    source: str = Field(description="the environment whose promoted model versions this one serves (e.g. dev)")
    registry: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{2,32}$",
                          description="the Azure ML registry the source shares its promoted versions into (infra output)")


class Environment(Strict):
    backend: Literal["local", "azureml"] = "local"
    target: AzureTarget | None = None
    promotion: Promotion | None = Field(None, description="serve the versions another environment trained and promoted, "
                                        "from an Azure ML registry, instead of training here")
    state: RemoteState | None = Field(None, description="keep state, audit log, rollout records, incidents, SLO history "
                                      "and the apply lock (a blob lease) in Azure Blob Storage; unset: in .specops/")
    compute: str | None = Field(None, description="Azure ML compute cluster for pipeline jobs and batch deployments "
                                "(the infra's cpu-cluster); unset: pipeline jobs run on serverless compute")
    values: dict[str, Any] = Field({}, description="variables for Jinja2 overlays: {{ values.x }}")

    @model_validator(mode="after")
    def _azure_needs_target(self) -> Environment:
        if self.backend == "azureml" and self.target is None:
            raise ValueError("an azureml environment needs a target (subscription_id, resource_group, workspace)")
        if self.promotion is not None and self.backend != "azureml":
            raise ValueError("promotion goes through an Azure ML registry: it needs backend azureml")
        return self


class ProjectSpec(Strict):
    description: str = ""
    environments: dict[str, Environment] = {"local": Environment()}
    default_environment: str = "local"
    tracking_uri: str = "sqlite:///.specops/mlflow/mlflow.db"
    artifact_location: str = ".specops/mlflow/artifacts"
    instance_prices: dict[str, Annotated[float, Field(ge=0)]] = Field(
        {}, description="instance type -> price per instance-hour (your currency); `specops kpi` prices predictions with it")

    @model_validator(mode="after")
    def _default_exists(self) -> ProjectSpec:
        if self.default_environment not in self.environments:
            raise ValueError(f"default_environment {self.default_environment!r} is not one of {sorted(self.environments)}")
        return self

    def promoted_from(self, env: str) -> dict[str, str]:
        """The environments that serve what `env` promotes -> the registry each takes it through."""
        return {name: e.promotion.registry for name, e in sorted(self.environments.items())
                if e.promotion is not None and e.promotion.source == env}


@register_kind
class Project(Document):
    kind: Literal["Project"]
    spec: ProjectSpec


# --- Dataset -----------------------------------------------------------------

Scalar = str | int | float | bool


class Column(Strict):
    type: Literal["int", "float", "str", "bool"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Scalar] | None = Field(None, description="the only values the column may take")
    unique: bool = False
    role: Literal["input", "id", "date"] = Field(
        "input", description="id: names a row; date: says when. Neither is ever a model input (so never one-hot "
                             "encoded) nor watched for drift; a date column's text must parse as dates")
    description: str = ""


class DatasetSpec(Strict):
    path: str = Field(description="DVC-tracked file, relative to the project root")
    format: Literal["csv", "parquet"] = "csv"
    target: str = Field(description="the label column")
    sensitive: list[str] = Field([], description="columns used for fairness metrics, never as model inputs")
    columns: dict[str, Column]
    expectations: list[dict[str, dict[str, Any]]] = Field(
        [], description="extra Great Expectations, e.g. {expect_table_row_count_to_be_between: {min_value: 100}}"
    )
    description: str = ""

    @model_validator(mode="after")
    def _expectations_are_single_keyed(self) -> DatasetSpec:
        for item in self.expectations:
            if len(item) != 1 or not next(iter(item)).startswith("expect_"):
                raise ValueError("each expectation is one key, the expectation's name (expect_...), with its arguments")
        return self

    def is_input(self, name: str) -> bool:
        """May a model read this column? Not the label, a sensitive attribute, an id or a date."""
        return name != self.target and name not in self.sensitive and self.columns[name].role == "input"


@register_kind
class Dataset(Document):
    kind: Literal["Dataset"]
    spec: DatasetSpec


# --- FeatureSet --------------------------------------------------------------

TRANSFORMS = ("identity", "log1p", "ratio", "difference", "product", "clip", "one_hot", "bucketize")


class Feature(Strict):
    name: str
    transform: Literal["identity", "log1p", "ratio", "difference", "product", "clip", "one_hot", "bucketize"] = "identity"
    inputs: list[str] = Field([], description="source columns; default: the column named like the feature")
    params: dict[str, Any] = {}

    @property
    def sources(self) -> list[str]:
        return self.inputs or [self.name]


class FeatureSetSpec(Strict):
    dataset: Name
    version: int = Field(ge=1, description="bump when a transform's meaning changes")
    owner: str
    refresh: Cron
    features: list[Feature] = Field(min_length=1)
    description: str = ""


@register_kind
class FeatureSet(Document):
    kind: Literal["FeatureSet"]
    spec: FeatureSetSpec


# --- Gate --------------------------------------------------------------------

ERROR_BUDGET_METRIC = "error_budget_remaining"  # what a check naming an SLO bounds


class Check(Strict):
    metric: str | None = Field(None, description=f"the metric to bound; with `slo`: {ERROR_BUDGET_METRIC} (the default)")
    min: float | None = None
    max: float | None = None
    compare_to: Literal["champion"] | None = Field(
        None, description="compare against the current champion: min/max then bound the difference candidate - champion"
    )
    slo: Name | None = Field(
        None, description="an SLO whose error budget must not be exhausted (a release freeze); "
                          "min then bounds the remaining fraction, e.g. 0.25"
    )
    objective: str | None = Field(None, description="one objective of the SLO; default: all of them (the worst counts)")

    @model_validator(mode="before")
    @classmethod
    def _slo_metric_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("slo") is not None and data.get("metric") is None:
            return {**data, "metric": ERROR_BUDGET_METRIC}
        return data

    @model_validator(mode="after")
    def _has_bound(self) -> Check:
        if self.slo is not None:
            return self._slo_check()
        if self.metric is None:
            raise ValueError("a check needs a metric (or an slo)")
        if self.objective is not None:
            raise ValueError("objective belongs to a check that names an slo")
        if self.min is None and self.max is None:
            raise ValueError("a check needs min, max or both")
        return self

    def _slo_check(self) -> Check:
        # An SLO check needs no bound: an exhausted budget fails it by itself.
        if self.metric != ERROR_BUDGET_METRIC:
            raise ValueError(f"a check naming an slo bounds {ERROR_BUDGET_METRIC}, not {self.metric!r}")
        if self.compare_to is not None:
            raise ValueError("an slo check has no champion to compare to")
        return self

    def describe(self) -> str:
        if self.slo is not None:
            target = f"{self.slo}/{self.objective}" if self.objective else self.slo
            floor = f", remaining >= {self.min:g}" if self.min is not None else ""
            ceiling = f", remaining <= {self.max:g}" if self.max is not None else ""
            return f"error budget of SLO {target} not exhausted{floor}{ceiling}"
        subject = f"{self.metric} - champion" if self.compare_to else self.metric
        bounds = [f">= {self.min:g}" if self.min is not None else "", f"<= {self.max:g}" if self.max is not None else ""]
        return f"{subject} {' and '.join(b for b in bounds if b)}"


class GateSpec(Strict):
    checks: list[Check] = Field(min_length=1)
    description: str = ""


@register_kind
class Gate(Document):
    kind: Literal["Gate"]
    spec: GateSpec


# --- Pipeline ----------------------------------------------------------------

# What the built-in evaluation step produces, per task; gates may only check these or a custom step's metrics.
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = get_args(Task)
LATENCY_METRICS = ("p50_latency_ms", "p95_latency_ms")
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    # recall_<class> per class too, when the target column declares its `allowed` classes
    "multiclass": ("accuracy", "f1_macro", "f1_weighted", "log_loss", "min_class_recall"),
    "regression": ("rmse", "mae", "r2"),
}
# By the first sensitive column: the gap between the best and the worst group (fairlearn's MetricFrame).
# binary: selection rate (demographic parity); classes: error rate; regression: mean absolute error.
TASK_FAIRNESS_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("parity_diff", "error_rate_gap"),
    "multiclass": ("error_rate_gap",),
    "regression": ("mae_gap",),
}
EVALUATION_METRICS = (*TASK_METRICS["binary"], *LATENCY_METRICS)  # the default task's
FAIRNESS_METRICS = TASK_FAIRNESS_METRICS["binary"]
DEFAULT_SELECTION = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
DEFAULT_ESTIMATOR = {"binary": "sklearn.ensemble.RandomForestClassifier",
                     "multiclass": "sklearn.ensemble.RandomForestClassifier",
                     "regression": "sklearn.ensemble.RandomForestRegressor"}
# Metrics where lower is better: a selection on them minimizes unless told otherwise.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", *LATENCY_METRICS, "parity_diff", "error_rate_gap", "mae_gap"})


def task_metrics(task: str, classes: list[Any] | None = None) -> tuple[str, ...]:
    """What evaluate logs for `task` (without fairness): per-class recall only when the classes are known."""
    per_class = tuple(f"recall_{c}" for c in classes or []) if task == "multiclass" else ()
    return (*TASK_METRICS[task], *per_class, *LATENCY_METRICS)


class Step(Strict):
    name: Name
    command: str
    deps: list[str] = []
    outs: list[str] = []
    needs: list[Name] = Field([], description="steps that must run before this one")
    metrics: list[str] = Field([], description="metric names this step produces (in metrics/<step>.json)")
    refresh: bool = Field(False, description="fetches new data: runs again on every retraining even when its deps "
                                             "are unchanged (locally forced; on Azure ML never reused from an earlier run)")


class EarlyTermination(Strict):
    """Stop trials that fall behind, judged on the selection metric each trial reports as it trains
    (Azure ML's early termination policies, by their names and fields)."""

    policy: Literal["median_stopping", "bandit", "truncation_selection"]
    evaluation_interval: int = Field(1, ge=1, description="judge trials every this many reports")
    delay_evaluation: int = Field(0, ge=0, description="reports before the first judgement")
    slack_factor: float | None = Field(None, gt=0, description="bandit: stop a trial worse than the best by this ratio")
    slack_amount: float | None = Field(None, gt=0, description="bandit: stop a trial worse than the best by this much")
    truncation_percentage: int | None = Field(None, ge=1, le=99, description="truncation_selection: stop the worst this many percent")

    @model_validator(mode="after")
    def _policy_fields(self) -> EarlyTermination:
        bandit = self.slack_factor is not None or self.slack_amount is not None
        if self.policy == "bandit" and (self.slack_factor is None) == (self.slack_amount is None):
            raise ValueError("the bandit policy needs one of slack_factor or slack_amount")
        if self.policy != "bandit" and bandit:
            raise ValueError("slack_factor and slack_amount belong to the bandit policy")
        if (self.policy == "truncation_selection") != (self.truncation_percentage is not None):
            raise ValueError("truncation_percentage belongs to, and is needed by, the truncation_selection policy")
        return self


class SweepLimits(Strict):
    max_total_trials: int | None = Field(None, ge=1, description="trials at most; default: every grid point")
    max_concurrent_trials: int | None = Field(None, ge=1, description="trials at once; default: one per core")
    timeout: PositiveDuration | None = Field(None, description="no trial starts after this long")


class Training(Strict):
    """The team's own training code, in place of `estimator` (the contract: docs/training-code.md)."""

    command: str = Field(description="run once per sweep trial from the project root; reads the SPECOPS_* inputs, "
                                     "saves an MLflow model (any flavour) to $SPECOPS_MODEL_DIR and its metrics, "
                                     "the selection metric among them, to $SPECOPS_METRICS_FILE as JSON")
    deps: list[str] = Field([], description="files the command reads (its code): a change re-runs training")


class Sweep(Strict):
    """How the train stage searches the space params.yaml declares under `sweep:`."""

    sampling_algorithm: Literal["grid", "random", "bayesian"] = Field(
        "grid", description="grid: every point; random: draws; bayesian: each draw guided by the trials so far (Optuna's TPE locally)")
    early_termination: EarlyTermination | None = None
    limits: SweepLimits = SweepLimits()
    max_parallel: int = Field(0, ge=0, description="candidates trained at once; 0 = one per core "
                                                   "(the same as limits.max_concurrent_trials; set one of them)")

    @model_validator(mode="after")
    def _one_concurrency(self) -> Sweep:
        if self.max_parallel and self.limits.max_concurrent_trials:
            raise ValueError("set max_parallel or limits.max_concurrent_trials, not both")
        return self

    @property
    def concurrent_trials(self) -> int:
        """Trials at once; 0 = one per core."""
        return self.limits.max_concurrent_trials or self.max_parallel


class Selection(Strict):
    metric: str = Field("roc_auc", description="default: the task's (binary roc_auc, multiclass f1_macro, regression rmse)")
    goal: Literal["maximize", "minimize"] = Field(
        "maximize", description="default: minimize for errors and losses (rmse, mae, log_loss), else maximize")


class Triggers(Strict):
    schedule: Cron | None = None
    data_change: bool = False


class Feedback(Strict):
    """Production answers with their ground truth, joining the training data when the pipeline retrains."""

    endpoint: Name = Field(description="the Endpoint serving this pipeline's model whose labelled answers (the inference "
                                       "log joined with /feedback labels) are exported on each retraining")
    max_age: PositiveDuration = Field("P30D", description="only answers younger than this")


class PipelineSpec(Strict):
    dataset: Name
    feature_set: Name
    task: Task = Field("binary", description="binary or multiclass classification, or regression: decides the metrics "
                                             "evaluate computes, the default selection and estimator, what the endpoint answers")
    estimator: str = Field(
        "sklearn.ensemble.RandomForestClassifier",
        description="importable scikit-learn compatible estimator; default: the task's random forest "
                    "(lightgbm.LGBMClassifier, xgboost.XGBRegressor... work too)"
    )
    training: Training | None = Field(None, description="the team's training command instead of `estimator`; "
                                                        "its parameters come from the same params.yaml section")
    params: str = Field("train", description="section of params.yaml: {seed, test_size, fixed: {...}, sweep: {p: [..]}}")
    sweep: Sweep = Sweep()
    selection: Selection = Selection()
    gate: Name
    model_name: Name = Field(description="registered model name in the MLflow registry")
    steps: list[Step] = Field([], description="custom steps that run before data validation")
    triggers: Triggers = Triggers()
    feedback: Feedback | None = Field(None, description="on a retraining, the endpoint's labelled production rows join "
                                                        "the Dataset's rows (the features stage reads both)")
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """What a task implies when the spec leaves it out: estimator, selection metric, and the metric's goal."""
        if not isinstance(data, dict):
            return data
        if data.get("training") is not None and data.get("estimator") is not None:
            raise ValueError("give either estimator (specops trains it) or training (your command trains), not both")
        task = data.get("task", "binary")
        if task not in TASKS:
            return data  # the field's own validation names the choices
        selection = data.get("selection", {})
        if not isinstance(selection, dict):
            return data
        metric = selection.get("metric", DEFAULT_SELECTION[task])
        lower = isinstance(metric, str) and metric in LOWER_IS_BETTER  # anything else: the field's own error
        goal = selection.get("goal", "minimize" if lower else "maximize")
        return {"estimator": DEFAULT_ESTIMATOR[task], **data, "selection": {**selection, "metric": metric, "goal": goal}}

    @model_validator(mode="after")
    def _estimator_is_dotted(self) -> PipelineSpec:
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", self.estimator):
            raise ValueError(f"estimator {self.estimator!r} must be a dotted import path like sklearn.tree.DecisionTreeClassifier")
        return self


@register_kind
class Pipeline(Document):
    kind: Literal["Pipeline"]
    spec: PipelineSpec
