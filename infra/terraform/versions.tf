terraform {
  required_version = ">= 1.6"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.0"
    }
    # azurerm has no Azure ML registry resource: the registry goes through the ARM API (registry.tf).
    azapi = {
      source  = "Azure/azapi"
      version = "~> 2.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Keep state remote and locked for a team, e.g.:
  # backend "azurerm" {
  #   resource_group_name  = "rg-tfstate"
  #   storage_account_name = "sttfstate<unique>"
  #   container_name       = "tfstate"
  #   key                  = "specops-dev.tfstate"
  #   use_azuread_auth     = true
  # }
}

provider "azurerm" {
  # null falls back to ARM_SUBSCRIPTION_ID (or the Azure CLI's current subscription).
  subscription_id = var.subscription_id

  features {
    key_vault {
      # Purge protection is on: never try to purge, and recover a soft-deleted vault of the same name.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    resource_group {
      # The workspace creates resources Terraform does not know about; refuse to delete them silently.
      prevent_deletion_if_contains_resources = true
    }
  }
}

provider "azapi" {
  subscription_id = var.subscription_id
}
