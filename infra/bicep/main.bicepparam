// Example parameters for one environment. Copy per environment (dev.bicepparam,
// prod.bicepparam) and deploy each into its own resource group:
//   az group create -n rg-specops-dev -l westeurope
//   az deployment group create -g rg-specops-dev -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
using 'main.bicep'

param namePrefix = 'specops'
param tags = {
  project: 'specops'
  environment: 'dev'
  managedBy: 'bicep'
}

// true: VNet + private endpoints, public network access off. CI then needs
// runners inside the VNet to reach the workspace (docs/infrastructure.md).
param enablePrivateNetwork = false

param storageSku = 'Standard_LRS'
param containerRegistrySku = 'Basic'
param logRetentionDays = 30

// Who gets the SLO alerts (p95 latency, error rate, drift); empty: no receiver yet.
param alertEmail = ''

param computeName = 'cpu-cluster'
param computeVmSize = 'Standard_DS3_v2'
param computeMaxNodes = 4

// Object IDs of Entra groups (az ad group show -g <name> --query id -o tsv).
// Leave empty to skip an assignment.
param readerPrincipalId = ''
param dataScientistPrincipalId = ''
param approverPrincipalId = ''
param principalType = 'Group'
