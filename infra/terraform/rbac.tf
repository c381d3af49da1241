# Role assignments for the three specops principals. An empty principal ID skips its assignments.
#   reader          Reader on the resource group
#   data scientist  AzureML Data Scientist on the workspace (jobs, models, endpoints;
#                   not the workspace itself nor its compute)
#   approver        approvals happen in CI (the `prod` environment); in Azure the approver
#                   reads everything (Reader) and queries the audit log (Log Analytics Reader)

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
