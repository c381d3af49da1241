# ------------------------------------------------------------------ dashboards and alerts
# The workbook with the blueprint's three views and the log alert rules that mirror the SLOs, wired to one
# action group: the same KQL files and workbook JSON as infra/bicep/modules/monitoring.bicep (infra/monitoring/).

locals {
  monitoring_dir = "${path.module}/../monitoring"
  slo_alerts = {
    "p95-latency" = {
      description = "p95 scoring latency over the latency SLO"
      severity    = 2
      query       = "alert-p95-latency.kql"
      column      = "p95_latency_ms"
      dimension   = "deployment"
      threshold   = var.latency_slo_ms
    }
    "error-rate" = {
      description = "Server error rate over the availability SLO allowance"
      severity    = 1
      query       = "alert-error-rate.kql"
      column      = "error_rate"
      dimension   = "deployment"
      threshold   = var.error_rate_slo
    }
    "drift" = {
      description = "A feature drifted past the monitor threshold"
      severity    = 3
      query       = "alert-drift.kql"
      column      = "drift"
      dimension   = "feature"
      threshold   = var.drift_threshold
    }
  }
}

resource "azurerm_monitor_action_group" "slo" {
  name                = "ag-${var.name_prefix}-slo"
  resource_group_name = azurerm_resource_group.this.name
  short_name          = substr("${var.name_prefix}slo", 0, 12)
  tags                = local.tags

  dynamic "email_receiver" {
    for_each = var.alert_email == "" ? [] : [var.alert_email]
    content {
      name                    = "slo-owner"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }
}

resource "random_uuid" "workbook" {}

resource "azurerm_application_insights_workbook" "this" {
  name                = random_uuid.workbook.result
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  display_name        = "${var.name_prefix}: scoring, drift and rollouts"
  source_id           = lower(azurerm_application_insights.this.id)
  category            = "workbook"
  data_json           = file("${local.monitoring_dir}/workbook.json")
  tags                = local.tags
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "slo" {
  for_each             = local.slo_alerts
  name                 = "alert-${var.name_prefix}-${each.key}"
  resource_group_name  = azurerm_resource_group.this.name
  location             = azurerm_resource_group.this.location
  display_name         = "${var.name_prefix}: ${each.value.description}"
  description          = each.value.description
  severity             = each.value.severity
  enabled              = true
  scopes               = [azurerm_application_insights.this.id]
  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"
  tags                 = local.tags

  criteria {
    query                   = file("${local.monitoring_dir}/kql/${each.value.query}")
    time_aggregation_method = "Maximum"
    metric_measure_column   = each.value.column
    operator                = "GreaterThan"
    threshold               = each.value.threshold

    dimension {
      name     = each.value.dimension
      operator = "Include"
      values   = ["*"]
    }

    failing_periods {
      number_of_evaluation_periods             = 1
      minimum_failing_periods_to_trigger_alert = 1
    }
  }

  action {
    action_groups = [azurerm_monitor_action_group.slo.id]
  }
}
