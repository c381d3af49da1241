# Role assignments for the three specops principals. An empty principal ID skips its assignments.
#   reader          Reader on the resource group
#   data scientist  AzureML Data Scientist on the workspace (jobs, models, endpoints;
#                   not the workspace itself nor its compute)
#   approver        approvals happen in CI (the `prod` environment); in Azure the approver
#                   reads everything (Reader) and queries the audit log (Log Analytics Reader)
#   ci              the CI service principal that applies: AzureML Data Scientist on the
#                   workspace, Monitoring Reader (canary analysis reads Azure Monitor metrics,
#                   Microsoft.Insights/metrics/read, which AzureML Data Scientist lacks) and
#                   Storage Blob Data Contributor on the state container (state, audit log, lease)
#   plan            the read-only service principal that plans pull requests: Reader, and
#                   Storage Blob Data Reader on the state container

locals {
  role_assignments = {
    reader = {
      principal_id = var.reader_principal_id
      role         = "Reader"
      scope        = azurerm_resource_group.this.id
    }
    data-scientist = {
      principal_id = var.data_scientist_principal_id
      role         = "AzureML Data Scientist"
      scope        = azurerm_machine_learning_workspace.this.id
    }
    approver-read = {
      principal_id = var.approver_principal_id
      role         = "Reader"
      scope        = azurerm_resource_group.this.id
    }
    approver-audit-log = {
      principal_id = var.approver_principal_id
      role         = "Log Analytics Reader"
      scope        = azurerm_log_analytics_workspace.this.id
    }
  }
}

resource "azurerm_role_assignment" "this" {
  for_each             = { for key, a in local.role_assignments : key => a if a.principal_id != "" }
  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = each.value.principal_id
  principal_type       = var.principal_type
  description          = "specops ${each.key}"
}

locals {
  service_principal_roles = {
    ci-workspace = {
      principal_id = var.ci_principal_id
      role         = "AzureML Data Scientist"
      scope        = azurerm_machine_learning_workspace.this.id
    }
    ci-metrics = {
      principal_id = var.ci_principal_id
      role         = "Monitoring Reader"
      scope        = azurerm_resource_group.this.id
    }
    ci-state = {
      principal_id = var.ci_principal_id
      role         = "Storage Blob Data Contributor"
      scope        = azurerm_storage_container.state.id
    }
    plan-read = {
      principal_id = var.plan_principal_id
      role         = "Reader"
      scope        = azurerm_resource_group.this.id
    }
    plan-state = {
      principal_id = var.plan_principal_id
      role         = "Storage Blob Data Reader"
      scope        = azurerm_storage_container.state.id
    }
  }
}

resource "azurerm_role_assignment" "service_principals" {
  for_each             = { for key, a in local.service_principal_roles : key => a if a.principal_id != "" }
  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = each.value.principal_id
  principal_type       = "ServicePrincipal"
  description          = "specops ${each.key}"
}
