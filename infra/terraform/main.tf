# specops: the Azure ML workspace and what it stands on, for one environment
# (apply once per environment, each with its own state and resource group).
# The same set as infra/bicep/main.bicep.

data "azurerm_client_config" "current" {}

# Globally unique names: six random lowercase letters/digits, kept in state.
resource "random_string" "suffix" {
  length  = 6
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  suffix = random_string.suffix.result
  tags   = merge({ project = "specops", managed_by = "terraform" }, var.tags)

  # Storage, Key Vault and ACR names allow letters and digits only (name_prefix is validated to be that).
  storage_account_name    = "st${var.name_prefix}${local.suffix}" # <= 18 of 24
  key_vault_name          = "kv${var.name_prefix}${local.suffix}" # <= 18 of 24
  container_registry_name = "cr${var.name_prefix}${local.suffix}" # <= 18 of 50
  log_analytics_name      = "log-${var.name_prefix}-${local.suffix}"
  app_insights_name       = "appi-${var.name_prefix}-${local.suffix}"
  workspace_name          = "mlw-${var.name_prefix}-${local.suffix}" # <= 21 of 33
  public_access           = !var.enable_private_network
}

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
  tags     = local.tags
}

# ------------------------------------------------------------------ storage
resource "azurerm_storage_account" "this" {
  # Findings checkov reports here that are deliberate (docs/infrastructure.md, "checkov"):
  #checkov:skip=CKV_AZURE_35:Default network action is Deny with enable_private_network; public mode must Allow because GitHub-hosted runners and Microsoft-hosted agents (no fixed IPs) upload code snapshots and data to this account.
  #checkov:skip=CKV_AZURE_59:Public network access is off with enable_private_network; public mode keeps it on for the same reason as CKV_AZURE_35. Anonymous blob access is off either way (allow_nested_items_to_be_public = false).
  #checkov:skip=CKV2_AZURE_33:The private endpoints (blob, file) are created by network.tf when enable_private_network = true; they are optional by design.
  #checkov:skip=CKV2_AZURE_40:Azure ML's default datastores (workspaceblobstore, workspacefilestore) authenticate with the account key; shared-key access can only be turned off with identity-based datastores.
  #checkov:skip=CKV2_AZURE_1:Encrypted at rest with Microsoft-managed keys; customer-managed keys need a key, an identity and the workspace's own CMK settings, an organisation's choice rather than a template default.
  #checkov:skip=CKV_AZURE_206:Replication is the storage_replication_type variable; LRS is the cost-minded default for dev (everything in it is reproducible from git and DVC), and ZRS/GRS/RAGRS are allowed for prod.
  #checkov:skip=CKV_AZURE_33:No queues are used (Azure ML uses blobs and files); Storage Analytics logging for the queue service would record nothing.
  name                             = local.storage_account_name
  resource_group_name              = azurerm_resource_group.this.name
  location                         = azurerm_resource_group.this.location
  account_kind                     = "StorageV2"
  account_tier                     = "Standard"
  account_replication_type         = var.storage_replication_type
  min_tls_version                  = "TLS1_2"
  https_traffic_only_enabled       = true
  allow_nested_items_to_be_public  = false
  cross_tenant_replication_enabled = false
  # Azure ML's default datastores still use the account key.
  shared_access_key_enabled     = true
  public_network_access_enabled = local.public_access
  tags                          = local.tags

  # SAS tokens valid for more than a day are logged (Azure ML's own SAS tokens are short-lived).
  sas_policy {
    expiration_period = "1.00:00:00"
    expiration_action = "Log"
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = 7
    }

    container_delete_retention_policy {
      days = 7
    }
  }

  network_rules {
    default_action = var.enable_private_network ? "Deny" : "Allow"
    bypass         = ["AzureServices"]
  }
}

# specops' records for the environments applied from CI: state, audit log (append blob),
# incidents, SLO history and the apply lock (a blob lease naming its holder).
resource "azurerm_storage_container" "state" {
  #checkov:skip=CKV2_AZURE_21:Blob reads, writes and deletes are logged to Log Analytics by azurerm_monitor_diagnostic_setting.blob (diagnostic settings, the current mechanism); the check looks only for the legacy azurerm_log_analytics_storage_insights.
  name                  = var.state_container_name
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

# ------------------------------------------------------------------ key vault
resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_109:Firewall default action is Deny with enable_private_network; in public mode the workspace and CI (no fixed IPs) must reach the vault. Access is Entra RBAC either way.
  #checkov:skip=CKV_AZURE_189:Public network access is off with enable_private_network; public mode keeps it on, as for the storage account (CKV_AZURE_59).
  #checkov:skip=CKV2_AZURE_32:The vault's private endpoint is created by network.tf when enable_private_network = true; it is optional by design.
  name                          = local.key_vault_name
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  soft_delete_retention_days    = 90
  purge_protection_enabled      = true
  public_network_access_enabled = local.public_access
  tags                          = local.tags

  network_acls {
    default_action = var.enable_private_network ? "Deny" : "Allow"
    bypass         = "AzureServices"
  }
}

# ------------------------------------------------------------------ monitoring
resource "azurerm_log_analytics_workspace" "this" {
  name                = local.log_analytics_name
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

resource "azurerm_application_insights" "this" {
  name                = local.app_insights_name
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  application_type    = "web"
  workspace_id        = azurerm_log_analytics_workspace.this.id
  tags                = local.tags
}

# ------------------------------------------------------------------ registry
resource "azurerm_container_registry" "this" {
  # Basic is the default tier; these need Premium (or Defender), see docs/infrastructure.md:
  #checkov:skip=CKV_AZURE_139:The registry stays publicly reachable (admin user off, pulls through Entra identities); a private registry needs Premium plus a private endpoint and an image-build compute.
  #checkov:skip=CKV_AZURE_233:Zone redundancy is a Premium feature; the default tier is Basic.
  #checkov:skip=CKV_AZURE_237:Dedicated data endpoints are a Premium feature; the default tier is Basic.
  #checkov:skip=CKV_AZURE_164:Content trust (signed images) is a Premium feature, and Azure ML builds the images itself.
  #checkov:skip=CKV_AZURE_165:Geo-replication is a Premium feature; one region per environment.
  #checkov:skip=CKV_AZURE_166:Quarantine is a Premium preview feature.
  #checkov:skip=CKV_AZURE_167:Retention of untagged manifests is a Premium feature.
  #checkov:skip=CKV_AZURE_163:Image vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan, not a registry setting.
  name                = local.container_registry_name
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = var.container_registry_sku
  admin_enabled       = false
  tags                = local.tags
}

# ------------------------------------------------------------------ workspace
resource "azurerm_machine_learning_workspace" "this" {
  #checkov:skip=CKV2_AZURE_49:Public network access is off with enable_private_network (workspace private endpoint in network.tf); public mode is the default so that hosted CI runners can apply.
  #checkov:skip=CKV2_AZURE_50:The linked storage account is private with enable_private_network; see the storage account's CKV_AZURE_59.
  name                          = local.workspace_name
  friendly_name                 = "${var.name_prefix} (${var.resource_group_name})"
  description                   = "specops workspace: managed from specs/ by the specops reconciler."
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  storage_account_id            = azurerm_storage_account.this.id
  key_vault_id                  = azurerm_key_vault.this.id
  application_insights_id       = azurerm_application_insights.this.id
  container_registry_id         = azurerm_container_registry.this.id
  public_network_access_enabled = local.public_access
  sku_name                      = "Basic"
  tags                          = local.tags

  identity {
    type = "SystemAssigned"
  }

  # Private mode also isolates what Azure ML runs for the workspace (serverless jobs, serverless Spark for
  # monitors, managed online endpoints) in its managed VNet; outbound stays open for pip and image pulls.
  managed_network {
    isolation_mode = var.enable_private_network ? "AllowInternetOutbound" : "Disabled"
  }
}

# Workspace and Key Vault activity goes to Log Analytics: the audit trail
# (who deployed, approved, rolled back) that KQL queries read.
resource "azurerm_monitor_diagnostic_setting" "workspace" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_machine_learning_workspace.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "allLogs"
  }
}

resource "azurerm_monitor_diagnostic_setting" "key_vault" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category_group = "audit"
  }
}

# Who read or wrote specops' state, audit log and apply lease (and the data and models beside them).
resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id

  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
}

# ------------------------------------------------------------------ compute
resource "azurerm_machine_learning_compute_cluster" "this" {
  name                          = var.compute_name
  description                   = "Training cluster for specops pipelines: low priority, scales to zero."
  location                      = azurerm_resource_group.this.location
  machine_learning_workspace_id = azurerm_machine_learning_workspace.this.id
  vm_size                       = var.compute_vm_size
  vm_priority                   = "LowPriority"
  local_auth_enabled            = false
  ssh_public_access_enabled     = false
  # Behind the VNet the nodes get no public IP (that needs the workspace's private endpoint).
  node_public_ip_enabled = !var.enable_private_network
  subnet_resource_id     = var.enable_private_network ? azurerm_subnet.training[0].id : null
  tags                   = local.tags

  identity {
    type = "SystemAssigned"
  }

  scale_settings {
    min_node_count                       = 0
    max_node_count                       = var.compute_max_nodes
    scale_down_nodes_after_idle_duration = "PT120S"
  }

  depends_on = [azurerm_private_endpoint.this]
}
