variable "subscription_id" {
  description = "Subscription to deploy into. null: ARM_SUBSCRIPTION_ID or the Azure CLI's current subscription."
  type        = string
  default     = null
}

variable "resource_group_name" {
  description = "Resource group to create for this environment (one per environment, e.g. rg-specops-dev)."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "name_prefix" {
  description = "Short lowercase prefix for resource names."
  type        = string
  default     = "specops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.name_prefix))
    error_message = "name_prefix must be 2-10 characters: a lowercase letter, then lowercase letters or digits."
  }
}

variable "tags" {
  description = "Tags put on every resource."
  type        = map(string)
  default     = {}
}

variable "enable_private_network" {
  description = "Put storage, Key Vault and the workspace behind private endpoints in a new VNet, and disable their public network access."
  type        = bool
  default     = false
}

variable "vnet_address_space" {
  description = "Address space of the VNet (only with enable_private_network)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "training_subnet_prefix" {
  description = "Subnet for the compute cluster (only with enable_private_network)."
  type        = string
  default     = "10.40.0.0/24"
}

variable "private_endpoint_subnet_prefix" {
  description = "Subnet for the private endpoints (only with enable_private_network)."
  type        = string
  default     = "10.40.1.0/24"
}

variable "storage_replication_type" {
  description = "Storage redundancy: LRS, ZRS, GRS or RAGRS."
  type        = string
  default     = "LRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be LRS, ZRS, GRS or RAGRS."
  }
}

variable "container_registry_sku" {
  description = "Container registry tier. Premium is needed to put the registry itself behind a private endpoint."
  type        = string
  default     = "Basic"

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.container_registry_sku)
    error_message = "container_registry_sku must be Basic, Standard or Premium."
  }
}

variable "log_retention_days" {
  description = "Days Log Analytics keeps logs (the audit trail of deployments and approvals)."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "compute_name" {
  description = "Name of the compute cluster the Pipeline specs run on."
  type        = string
  default     = "cpu-cluster"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,15}$", var.compute_name))
    error_message = "compute_name must be 2-16 characters: a letter, then letters, digits or hyphens."
  }
}

variable "compute_vm_size" {
  description = "VM size of the compute cluster."
  type        = string
  default     = "Standard_DS3_v2"
}

variable "compute_max_nodes" {
  description = "Upper bound of the compute cluster; it always scales down to 0."
  type        = number
  default     = 4

  validation {
    condition     = var.compute_max_nodes >= 1 && var.compute_max_nodes <= 100
    error_message = "compute_max_nodes must be between 1 and 100."
  }
}

variable "reader_principal_id" {
  description = "Object ID of the principal (usually a group) that gets read-only access. Empty: no assignment."
  type        = string
  default     = ""
}

variable "data_scientist_principal_id" {
  description = "Object ID of the principal that gets AzureML Data Scientist on the workspace. Empty: no assignment."
  type        = string
  default     = ""
}

variable "approver_principal_id" {
  description = "Object ID of the principal that approves promotions: read access plus the audit log. Empty: no assignment."
  type        = string
  default     = ""
}

variable "ci_principal_id" {
  description = "Object ID of the CI service principal that applies: AzureML Data Scientist on the workspace, Monitoring Reader for canary metrics, Storage Blob Data Contributor on the state container. Empty: no assignment."
  type        = string
  default     = ""
}

variable "plan_principal_id" {
  description = "Object ID of the read-only service principal that plans pull requests: Reader on the resource group, Storage Blob Data Reader on the state container. Empty: no assignment."
  type        = string
  default     = ""
}

variable "ml_registry_name" {
  description = "Azure ML registry to create here, through which prod serves what dev promoted (Project spec environments.prod.promotion.registry). Apply it with one environment, usually dev. Empty: none."
  type        = string
  default     = ""
  validation {
    condition     = var.ml_registry_name == "" || can(regex("^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$", var.ml_registry_name))
    error_message = "ml_registry_name: 3-33 letters, digits, - and _, starting with a letter or digit."
  }
}

variable "ml_registry_user_principal_ids" {
  description = "Object IDs of the identities that share versions into the registry or deploy from it (dev's and prod's ci_principal_id): AzureML Registry User on it."
  type        = list(string)
  default     = []
}

variable "state_container_name" {
  description = "Blob container for specops state, audit log, rollout records, incidents, SLO history and the apply lease."
  type        = string
  default     = "specops-state"
}

variable "principal_type" {
  description = "Kind of the three principals above (reader, data scientist, approver): Group, User or ServicePrincipal."
  type        = string
  default     = "Group"

  validation {
    condition     = contains(["Group", "User", "ServicePrincipal"], var.principal_type)
    error_message = "principal_type must be Group, User or ServicePrincipal."
  }
}

variable "alert_email" {
  description = "E-mail address the SLO alerts go to (the action group); empty: add a receiver later."
  type        = string
  default     = ""
}

variable "latency_slo_ms" {
  description = "The latency SLO: p95 scoring latency above this many milliseconds alerts."
  type        = number
  default     = 350
}

variable "error_rate_slo" {
  description = "The availability SLO as an error rate: a server error share above this alerts (0.005 for 99.5%)."
  type        = number
  default     = 0.005
}

variable "drift_threshold" {
  description = "Drift statistic (normalized Wasserstein / Jensen-Shannon distance) above which a feature alerts."
  type        = number
  default     = 0.1
}
