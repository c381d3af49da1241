// Private networking for specops: a VNet with a training subnet and a subnet
// for private endpoints, the private DNS zones the endpoints register in, and
// private endpoints for storage (blob, file), Key Vault and the workspace.
// Zone names are the Azure public cloud's.

param location string
param tags object
param vnetName string
param vnetAddressPrefix string
param trainingSubnetName string
param trainingSubnetPrefix string
param privateEndpointSubnetName string
param privateEndpointSubnetPrefix string
param storageAccountId string
param keyVaultId string
param workspaceId string

var zoneNames = {
  blob: 'privatelink.blob.${environment().suffixes.storage}'
  file: 'privatelink.file.${environment().suffixes.storage}'
  vault: 'privatelink.vaultcore.azure.net'
  api: 'privatelink.api.azureml.ms'
  notebooks: 'privatelink.notebooks.azure.net'
}
// The zones' keys as an array: the zones and their VNet links loop over it with the same index.
// (An array rather than items(zoneNames): checkov's Bicep parser cannot read an indexed loop over items().)
var zoneKeys = [
  'blob'
  'file'
  'vault'
  'api'
  'notebooks'
]

// One entry per private endpoint: the target, its sub-resource, the zones its records go in.
var endpoints = [
  {
    name: 'pe-${last(split(storageAccountId, '/'))}-blob'
    target: storageAccountId
    groupId: 'blob'
    zones: [
      'blob'
    ]
  }
  {
    name: 'pe-${last(split(storageAccountId, '/'))}-file'
    target: storageAccountId
    groupId: 'file'
    zones: [
      'file'
    ]
  }
  {
    name: 'pe-${last(split(keyVaultId, '/'))}-vault'
    target: keyVaultId
    groupId: 'vault'
    zones: [
      'vault'
    ]
  }
  {
    name: 'pe-${last(split(workspaceId, '/'))}-amlworkspace'
    target: workspaceId
    groupId: 'amlworkspace'
    zones: [
      'api'
      'notebooks'
    ]
  }
]

// One NSG per subnet, with Azure's default rules only: the compute nodes have no
// public IP here, so Azure ML needs no inbound rule, and outbound stays open to
// the service tags Azure ML reaches (storage, registry, Entra ID, the workspace).
resource trainingNsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-${vnetName}-training'
  location: location
  tags: tags
  properties: {}
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-${vnetName}-private-endpoints'
  location: location
  tags: tags
  properties: {}
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: [
      {
        name: trainingSubnetName
        properties: {
          addressPrefix: trainingSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
          networkSecurityGroup: {
            id: trainingNsg.id
          }
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
          networkSecurityGroup: {
            id: privateEndpointNsg.id
          }
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in zoneKeys: {
    name: zoneNames[zone]
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in zoneKeys: {
    parent: zones[i]
    name: '${vnetName}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [
  for ep in endpoints: {
    name: ep.name
    location: location
    tags: tags
    properties: {
      subnet: {
        id: '${vnet.id}/subnets/${privateEndpointSubnetName}'
      }
      privateLinkServiceConnections: [
        {
          name: ep.name
          properties: {
            privateLinkServiceId: ep.target
            groupIds: [
              ep.groupId
            ]
          }
        }
      ]
    }
  }
]

resource dnsZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [
  for (ep, i) in endpoints: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        for zone in ep.zones: {
          name: replace(zoneNames[zone], '.', '-')
          properties: {
            privateDnsZoneId: resourceId('Microsoft.Network/privateDnsZones', zoneNames[zone])
          }
        }
      ]
    }
    dependsOn: [
      zones
    ]
  }
]

output vnetId string = vnet.id
output trainingSubnetId string = '${vnet.id}/subnets/${trainingSubnetName}'
output privateEndpointSubnetId string = '${vnet.id}/subnets/${privateEndpointSubnetName}'
