output "resource_group_name" {
  description = "Set AZURE_RESOURCE_GROUP to this."
  value       = azurerm_resource_group.this.name
}

output "workspace_name" {
  description = "Set AZURE_ML_WORKSPACE to this."
  value       = azurerm_machine_learning_workspace.this.name
}

output "subscription_id" {
  description = "Set AZURE_SUBSCRIPTION_ID to this."
  value       = data.azurerm_client_config.current.subscription_id
}

output "workspace_id" {
  value = azurerm_machine_learning_workspace.this.id
}

output "workspace_principal_id" {
  description = "Object ID of the workspace's system-assigned identity."
  value       = azurerm_machine_learning_workspace.this.identity[0].principal_id
}

output "storage_account_name" {
  value = azurerm_storage_account.this.name
}

output "state_account_url" {
  description = "Set SPECOPS_STATE_ACCOUNT_URL to this (the blob endpoint holding the state container)."
  value       = azurerm_storage_account.this.primary_blob_endpoint
}

output "state_container_name" {
  value = azurerm_storage_container.state.name
}

output "key_vault_name" {
  value = azurerm_key_vault.this.name
}

output "container_registry_name" {
  value = azurerm_container_registry.this.name
}

output "application_insights_name" {
  value = azurerm_application_insights.this.name
}

output "log_analytics_workspace_id" {
  value = azurerm_log_analytics_workspace.this.id
}

output "compute_name" {
  value = azurerm_machine_learning_compute_cluster.this.name
}

output "ml_registry_name" {
  description = "Project spec environments.prod.promotion.registry (empty: no registry made here)."
  value       = var.ml_registry_name
}
