# Private networking (enable_private_network = true): a VNet with a training
# subnet and a private-endpoint subnet, private DNS zones linked to it, and
# private endpoints for storage (blob, file), Key Vault and the workspace.
# Zone names are the Azure public cloud's.

locals {
  private_dns_zones = var.enable_private_network ? {
    blob      = "privatelink.blob.core.windows.net"
    file      = "privatelink.file.core.windows.net"
    vault     = "privatelink.vaultcore.azure.net"
    api       = "privatelink.api.azureml.ms"
    notebooks = "privatelink.notebooks.azure.net"
  } : {}

  private_endpoints = var.enable_private_network ? {
    storage-blob = {
      resource_id = azurerm_storage_account.this.id
      subresource = "blob"
      zones       = ["blob"]
    }
    storage-file = {
      resource_id = azurerm_storage_account.this.id
      subresource = "file"
      zones       = ["file"]
    }
    key-vault = {
      resource_id = azurerm_key_vault.this.id
      subresource = "vault"
      zones       = ["vault"]
    }
    workspace = {
      resource_id = azurerm_machine_learning_workspace.this.id
      subresource = "amlworkspace"
      zones       = ["api", "notebooks"]
    }
  } : {}
}

resource "azurerm_virtual_network" "this" {
  count               = var.enable_private_network ? 1 : 0
  name                = "vnet-${var.name_prefix}-${local.suffix}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  address_space       = [var.vnet_address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "training" {
  count                             = var.enable_private_network ? 1 : 0
  name                              = "snet-training"
  resource_group_name               = azurerm_resource_group.this.name
  virtual_network_name              = azurerm_virtual_network.this[0].name
  address_prefixes                  = [var.training_subnet_prefix]
  private_endpoint_network_policies = "Disabled"
}

resource "azurerm_subnet" "private_endpoints" {
  count                             = var.enable_private_network ? 1 : 0
  name                              = "snet-private-endpoints"
  resource_group_name               = azurerm_resource_group.this.name
  virtual_network_name              = azurerm_virtual_network.this[0].name
  address_prefixes                  = [var.private_endpoint_subnet_prefix]
  private_endpoint_network_policies = "Disabled"
}

# One NSG per subnet, with Azure's default rules only: the compute nodes have no
# public IP here, so Azure ML needs no inbound rule, and outbound stays open to
# the service tags Azure ML reaches (storage, registry, Entra ID, the workspace).
resource "azurerm_network_security_group" "this" {
  for_each            = var.enable_private_network ? toset(["training", "private-endpoints"]) : toset([])
  name                = "nsg-${var.name_prefix}-${local.suffix}-${each.key}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  tags                = local.tags
}

resource "azurerm_subnet_network_security_group_association" "training" {
  count                     = var.enable_private_network ? 1 : 0
  subnet_id                 = azurerm_subnet.training[0].id
  network_security_group_id = azurerm_network_security_group.this["training"].id
}

resource "azurerm_subnet_network_security_group_association" "private_endpoints" {
  count                     = var.enable_private_network ? 1 : 0
  subnet_id                 = azurerm_subnet.private_endpoints[0].id
  network_security_group_id = azurerm_network_security_group.this["private-endpoints"].id
}

resource "azurerm_private_dns_zone" "this" {
  for_each            = local.private_dns_zones
  name                = each.value
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  for_each              = local.private_dns_zones
  name                  = "vnet-link"
  resource_group_name   = azurerm_resource_group.this.name
  private_dns_zone_name = azurerm_private_dns_zone.this[each.key].name
  virtual_network_id    = azurerm_virtual_network.this[0].id
  registration_enabled  = false
  tags                  = local.tags
}

resource "azurerm_private_endpoint" "this" {
  for_each            = local.private_endpoints
  name                = "pe-${var.name_prefix}-${local.suffix}-${each.key}"
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  subnet_id           = azurerm_subnet.private_endpoints[0].id
  tags                = local.tags

  private_service_connection {
    name                           = "psc-${each.key}"
    private_connection_resource_id = each.value.resource_id
    subresource_names              = [each.value.subresource]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "default"
    private_dns_zone_ids = [for zone in each.value.zones : azurerm_private_dns_zone.this[zone].id]
  }
}
