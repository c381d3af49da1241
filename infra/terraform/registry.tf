# The Azure ML registry prod is promoted through: dev shares each version its rollouts
# promote into it, prod's deployments serve from it and never train (docs/azureml.md).
# Created by the one environment that sets ml_registry_name (usually dev).
resource "azapi_resource" "ml_registry" {
  count     = var.ml_registry_name == "" ? 0 : 1
  type      = "Microsoft.MachineLearningServices/registries@2024-04-01"
  name      = var.ml_registry_name
  parent_id = azurerm_resource_group.this.id
  location  = azurerm_resource_group.this.location
  tags      = var.tags

  identity {
    type = "SystemAssigned"
  }

  body = {
    properties = {
      publicNetworkAccess = local.public_access ? "Enabled" : "Disabled"
      regionDetails = [{
        location = azurerm_resource_group.this.location
        storageAccountDetails = [{
          systemCreatedStorageAccount = {
            storageAccountType       = "Standard_LRS"
            storageAccountHnsEnabled = false
            allowBlobPublicAccess    = false
          }
        }]
        acrDetails = [{
          systemCreatedAcrAccount = {
            acrAccountSku = "Premium"
          }
        }]
      }]
    }
  }
}

resource "azurerm_role_assignment" "ml_registry_user" {
  for_each             = var.ml_registry_name == "" ? toset([]) : toset(var.ml_registry_user_principal_ids)
  scope                = azapi_resource.ml_registry[0].id
  role_definition_name = "AzureML Registry User"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
  description          = "specops CI (share promoted versions, deploy from the registry)"
}
