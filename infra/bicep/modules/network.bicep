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
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in items(zoneNames): {
    name: zone.value
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in items(zoneNames): {
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
