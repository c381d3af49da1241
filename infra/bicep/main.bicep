// specops: the Azure ML workspace and what it stands on, for one environment
// (deploy once per environment, each into its own resource group).
//
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
//
// Storage (blob versioning), Key Vault (RBAC, purge protection), Log Analytics +
// Application Insights, Container Registry (no admin user), the Azure ML
// workspace (system-assigned identity), a low-priority compute cluster that
// scales to zero, optional private networking, and role assignments for the
// reader, data scientist and approver principals.
targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Short lowercase prefix for resource names: letters and digits (hyphens are dropped where a name cannot hold them).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'specops'

@description('Tags put on every resource.')
param tags object = {}

@description('Put storage, Key Vault and the workspace behind private endpoints in a new VNet, and disable their public network access.')
param enablePrivateNetwork bool = false

@description('Address space of the VNet (only with enablePrivateNetwork).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet for the compute cluster (only with enablePrivateNetwork).')
param trainingSubnetPrefix string = '10.40.0.0/24'

@description('Subnet for the private endpoints (only with enablePrivateNetwork).')
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

@description('Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Container registry tier. Premium is needed to put the registry itself behind a private endpoint.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Basic'

@description('Days Log Analytics keeps logs (the audit trail of deployments and approvals).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('E-mail address the SLO alerts go to (the action group); empty: add a receiver later.')
param alertEmail string = ''

@description('Name of the compute cluster the Pipeline specs run on.')
@minLength(2)
@maxLength(16)
param computeName string = 'cpu-cluster'

@description('VM size of the compute cluster.')
param computeVmSize string = 'Standard_DS3_v2'

@description('Upper bound of the compute cluster; it always scales down to 0.')
@minValue(1)
@maxValue(100)
param computeMaxNodes int = 4

@description('Object ID of the principal (usually a group) that gets read-only access. Empty: no assignment.')
param readerPrincipalId string = ''

@description('Object ID of the principal that gets AzureML Data Scientist on the workspace. Empty: no assignment.')
param dataScientistPrincipalId string = ''

@description('Object ID of the principal that approves promotions: read access plus the audit log. Empty: no assignment.')
param approverPrincipalId string = ''

@description('Object ID of the CI service principal that applies (specops apply): AzureML Data Scientist on the workspace, Monitoring Reader for canary metrics, Storage Blob Data Contributor on the state container. Empty: no assignment.')
param ciPrincipalId string = ''

@description('Object ID of the read-only service principal that plans pull requests: Reader on the resource group, Storage Blob Data Reader on the state container. Empty: no assignment.')
param planPrincipalId string = ''

@description('Azure ML registry to create here, through which prod serves what dev promoted (Project spec environments.prod.promotion.registry; 3-33 chars). Deploy it with one environment, usually dev. Empty: none.')
param mlRegistryName string = ''

@description('Object IDs of the identities that share versions into the registry or deploy from it (dev\'s and prod\'s ciPrincipalId): AzureML Registry User on it.')
param mlRegistryUserPrincipalIds array = []

@description('Blob container that keeps specops state, audit log, rollout records, incidents, SLO history and the apply lease (SPECOPS_STATE_ACCOUNT_URL points at its account).')
param stateContainerName string = 'specops-state'

@description('Kind of the three principals above (readerPrincipalId, dataScientistPrincipalId, approverPrincipalId).')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param principalType string = 'Group'

// ---------------------------------------------------------------- names
// uniqueString() is 13 lowercase letters/digits, stable for this resource group.
var suffix = uniqueString(resourceGroup().id)
var prefix = toLower(namePrefix)
// Storage, Key Vault and ACR names allow letters and digits only, 24 chars at most here.
var compactPrefix = take(replace(replace(prefix, '-', ''), '_', ''), 9)
var storageName = take('st${compactPrefix}${suffix}', 24) // 3-24, a-z0-9
var keyVaultName = take('kv${compactPrefix}${suffix}', 24) // 3-24, starts with a letter
var registryName = take('cr${compactPrefix}${suffix}', 50) // 5-50, a-zA-Z0-9
var logAnalyticsName = 'log-${prefix}-${suffix}' // 4-63
var appInsightsName = 'appi-${prefix}-${suffix}'
var workspaceName = take('mlw-${prefix}-${suffix}', 33) // 3-33
var vnetName = 'vnet-${prefix}-${suffix}'
var trainingSubnetName = 'snet-training'
var privateEndpointSubnetName = 'snet-private-endpoints'
var publicAccess = enablePrivateNetwork ? 'Disabled' : 'Enabled'
var trainingSubnetRef = {
  id: resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, trainingSubnetName)
}

// Built-in role definition IDs (the same in every tenant).
var roles = {
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader
  dataScientist: 'f6c7c914-8db3-469d-8ca1-694a8f32e121' // AzureML Data Scientist
  logAnalyticsReader: '73c42c96-874c-492b-b04d-ab87d138a893' // Log Analytics Reader
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05' // Monitoring Reader (Microsoft.Insights/metrics/read)
  blobContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  blobReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
  registryUser: '1823dd4f-9b8c-4ab6-ab4e-7397a3684615' // AzureML Registry User
}

// ---------------------------------------------------------------- storage
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // Findings checkov reports here that are deliberate (docs/infrastructure.md, "checkov"):
  // checkov:skip=CKV_AZURE_35:Default network action is Deny with enablePrivateNetwork; public mode must Allow because GitHub-hosted runners and Microsoft-hosted agents (no fixed IPs) upload code snapshots and data to this account.
  // checkov:skip=CKV_AZURE_206:Replication is the storageSku parameter; Standard_LRS is the cost-minded default for dev (everything in it is reproducible from git and DVC), and ZRS/GRS/RAGRS are allowed for prod.
  // checkov:skip=CKV_AZURE_43:False positive: the name is take('st<prefix><uniqueString>', 24), 3-24 lowercase letters and digits (tests/infra checks the bound), which checkov cannot evaluate.
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Azure ML's default datastores still use the account key; identity-based
    // datastores would let this be false.
    allowSharedKeyAccess: true
    // SAS tokens valid for more than a day are logged (Azure ML's own SAS tokens are short-lived).
    sasPolicy: {
      sasExpirationPeriod: '1.00:00:00'
      expirationAction: 'Log'
    }
    publicNetworkAccess: publicAccess
    networkAcls: {
      defaultAction: enablePrivateNetwork ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

// specops' records for the environments applied from CI: state, audit log (append
// blob), incidents, SLO history, and the apply lock (a blob lease naming its holder).
resource stateContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: stateContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ---------------------------------------------------------------- key vault
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:Firewall default action is Deny with enablePrivateNetwork; in public mode the workspace and CI (no fixed IPs) must reach the vault. Access is Entra RBAC either way.
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: publicAccess
    networkAcls: {
      defaultAction: enablePrivateNetwork ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// ---------------------------------------------------------------- monitoring
resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

// Dashboards and alerts: the workbook's three views and the SLO alert rules (modules/monitoring.bicep).
module monitoring 'modules/monitoring.bicep' = {
  name: 'specops-monitoring'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsId: appInsights.id
    alertEmail: alertEmail
  }
}

// ---------------------------------------------------------------- registry
resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // Basic is the default tier; these need Premium (or Defender), see docs/infrastructure.md:
  // checkov:skip=CKV_AZURE_139:The registry stays publicly reachable (admin user off, pulls through Entra identities); a private registry needs Premium plus a private endpoint and an image-build compute.
  // checkov:skip=CKV_AZURE_166:Quarantine is a Premium preview feature.
  // checkov:skip=CKV_AZURE_163:Image vulnerability scanning is Microsoft Defender for Containers, a subscription-level plan, not a registry setting.
  name: registryName
  location: location
  tags: tags
  sku: {
    name: containerRegistrySku
  }
  properties: {
    adminUserEnabled: false
  }
}

// ---------------------------------------------------------------- workspace
resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' = {
  // checkov:skip=CKV_AZURE_243:The workspace's private endpoint is in modules/network.bicep, deployed when enablePrivateNetwork is true (optional by design); checkov does not follow modules.
  name: workspaceName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: '${namePrefix} (${resourceGroup().name})'
    description: 'specops workspace: managed from specs/ by the specops reconciler.'
    storageAccount: storage.id
    keyVault: keyVault.id
    applicationInsights: appInsights.id
    containerRegistry: registry.id
    publicNetworkAccess: publicAccess
    // Private mode also isolates what Azure ML runs for the workspace (serverless jobs, serverless Spark for
    // monitors, managed online endpoints) in its managed VNet; outbound stays open for pip and image pulls.
    managedNetwork: {
      isolationMode: enablePrivateNetwork ? 'AllowInternetOutbound' : 'Disabled'
    }
    hbiWorkspace: false
    v1LegacyMode: false
  }
  dependsOn: [
    blobService
  ]
}

// Workspace and Key Vault activity goes to Log Analytics: the audit trail
// (who deployed, approved, rolled back) that KQL queries read.
resource workspaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: workspace
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

// Who read or wrote specops' state, audit log and apply lease (and the data and models beside them).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource keyVaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: keyVault
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

// ---------------------------------------------------------------- private networking
module network 'modules/network.bicep' = if (enablePrivateNetwork) {
  name: 'specops-network'
  params: {
    location: location
    tags: tags
    vnetName: vnetName
    vnetAddressPrefix: vnetAddressPrefix
    trainingSubnetName: trainingSubnetName
    trainingSubnetPrefix: trainingSubnetPrefix
    privateEndpointSubnetName: privateEndpointSubnetName
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    storageAccountId: storage.id
    keyVaultId: keyVault.id
    workspaceId: workspace.id
  }
}

// ---------------------------------------------------------------- compute
resource compute 'Microsoft.MachineLearningServices/workspaces/computes@2024-04-01' = {
  parent: workspace
  name: computeName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    computeType: 'AmlCompute'
    description: 'Training cluster for specops pipelines: low priority, scales to zero.'
    disableLocalAuth: true
    properties: {
      vmSize: computeVmSize
      vmPriority: 'LowPriority'
      osType: 'Linux'
      scaleSettings: {
        minNodeCount: 0
        maxNodeCount: computeMaxNodes
        nodeIdleTimeBeforeScaleDown: 'PT120S'
      }
      remoteLoginPortPublicAccess: 'Disabled'
      // Behind the VNet the nodes get no public IP (that needs the workspace's private endpoint).
      enableNodePublicIp: !enablePrivateNetwork
      subnet: enablePrivateNetwork ? trainingSubnetRef : null
    }
  }
  dependsOn: [
    network
  ]
}

// ---------------------------------------------------------------- RBAC
// reader: Reader on the resource group.
resource readerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(readerPrincipalId)) {
  name: guid(resourceGroup().id, readerPrincipalId, roles.reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: readerPrincipalId
    principalType: principalType
    description: 'specops reader'
  }
}

// data scientist: AzureML Data Scientist on the workspace (jobs, models,
// endpoints; not the workspace itself nor its compute).
resource dataScientistAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(dataScientistPrincipalId)) {
  name: guid(workspace.id, dataScientistPrincipalId, roles.dataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.dataScientist)
    principalId: dataScientistPrincipalId
    principalType: principalType
    description: 'specops data scientist'
  }
}

// approver: approvals happen in CI (the `prod` environment); in Azure the
// approver reads everything and queries the audit log, and changes nothing.
resource approverReaderAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(approverPrincipalId)) {
  name: guid(resourceGroup().id, approverPrincipalId, roles.reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: approverPrincipalId
    principalType: principalType
    description: 'specops approver (read)'
  }
}

resource approverLogAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(approverPrincipalId)) {
  name: guid(logAnalytics.id, approverPrincipalId, roles.logAnalyticsReader)
  scope: logAnalytics
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.logAnalyticsReader)
    principalId: approverPrincipalId
    principalType: principalType
    description: 'specops approver (audit log)'
  }
}

// CI (apply): AzureML Data Scientist on the workspace; Monitoring Reader on the
// resource group, since canary analysis reads the online endpoints' Azure Monitor
// metrics (Microsoft.Insights/metrics/read, which AzureML Data Scientist lacks);
// Storage Blob Data Contributor on the state container only.
resource ciDataScientistAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(ciPrincipalId)) {
  name: guid(workspace.id, ciPrincipalId, roles.dataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.dataScientist)
    principalId: ciPrincipalId
    principalType: 'ServicePrincipal'
    description: 'specops CI (apply)'
  }
}

resource ciMetricsAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(ciPrincipalId)) {
  name: guid(resourceGroup().id, ciPrincipalId, roles.monitoringReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringReader)
    principalId: ciPrincipalId
    principalType: 'ServicePrincipal'
    description: 'specops CI (canary metrics)'
  }
}

resource ciStateAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(ciPrincipalId)) {
  name: guid(stateContainer.id, ciPrincipalId, roles.blobContributor)
  scope: stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobContributor)
    principalId: ciPrincipalId
    principalType: 'ServicePrincipal'
    description: 'specops CI (state, audit log, apply lease)'
  }
}

// Pull-request plans: read-only everywhere (Reader; the state container read, never the lease).
resource planReaderAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(planPrincipalId)) {
  name: guid(resourceGroup().id, planPrincipalId, roles.reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: planPrincipalId
    principalType: 'ServicePrincipal'
    description: 'specops plan (pull requests, read-only)'
  }
}

resource planStateAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(planPrincipalId)) {
  name: guid(stateContainer.id, planPrincipalId, roles.blobReader)
  scope: stateContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobReader)
    principalId: planPrincipalId
    principalType: 'ServicePrincipal'
    description: 'specops plan (state, read-only)'
  }
}

// ---------------------------------------------------------------- the registry prod is promoted through
// dev shares each version its rollouts promote into it; prod's deployments serve from it and never train.
resource mlRegistry 'Microsoft.MachineLearningServices/registries@2024-04-01' = if (!empty(mlRegistryName)) {
  name: mlRegistryName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publicNetworkAccess: publicAccess
    regionDetails: [
      {
        location: location
        storageAccountDetails: [
          {
            systemCreatedStorageAccount: {
              storageAccountType: 'Standard_LRS'
              storageAccountHnsEnabled: false
              allowBlobPublicAccess: false
            }
          }
        ]
        acrDetails: [
          {
            systemCreatedAcrAccount: {
              acrAccountSku: 'Premium'
            }
          }
        ]
      }
    ]
  }
}

resource mlRegistryUsers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in mlRegistryUserPrincipalIds: if (!empty(mlRegistryName)) {
  name: guid(resourceGroup().id, mlRegistryName, principalId, roles.registryUser)
  scope: mlRegistry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.registryUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'specops CI (share promoted versions, deploy from the registry)'
  }
}]

// ---------------------------------------------------------------- outputs
@description('Set AZURE_ML_WORKSPACE to this.')
output workspaceName string = workspace.name
@description('Set AZURE_RESOURCE_GROUP to this.')
output resourceGroupName string = resourceGroup().name
output workspaceId string = workspace.id
output workspacePrincipalId string = workspace.identity.principalId
output storageAccountName string = storage.name
@description('Set SPECOPS_STATE_ACCOUNT_URL to this (the blob endpoint holding the specops-state container).')
output stateAccountUrl string = storage.properties.primaryEndpoints.blob
output stateContainerName string = stateContainer.name
output keyVaultName string = keyVault.name
output containerRegistryName string = registry.name
output applicationInsightsName string = appInsights.name
output logAnalyticsWorkspaceId string = logAnalytics.id
output computeName string = compute.name
@description('Project spec environments.prod.promotion.registry (empty: no registry made here).')
output mlRegistryName string = mlRegistryName
