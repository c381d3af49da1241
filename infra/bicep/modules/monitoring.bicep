// Dashboards and alerts as code: the workbook with the blueprint's three views and the log alert
// rules that mirror the SLOs, wired to one action group. The KQL lives in infra/monitoring/kql (tests parse
// it; Terraform reads the same files), the workbook in infra/monitoring/workbook.json (validated against
// infra/monitoring/workbook.schema.json). The queries read what serving/azure_telemetry.py sends.

@description('Azure region of the rules and the workbook.')
param location string

@description('Tags for every resource.')
param tags object

@description('Short name prefix (the action group short name is cut to 12 characters).')
param namePrefix string

@description('Resource id of the Application Insights component the scoring path sends to.')
param appInsightsId string

@description('E-mail address the alerts go to; empty: the action group has no receiver until one is added.')
param alertEmail string = ''

@description('The latency SLO: p95 above this many milliseconds alerts.')
param latencySloMs int = 350

@description('The availability SLO as an error rate: a server error share above this alerts (0.005 for 99.5%).')
param errorRateSlo string = '0.005'

@description('Drift statistic (normalized Wasserstein / Jensen-Shannon distance) above which a feature alerts.')
param driftThreshold string = '0.1'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${namePrefix}-slo'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('${namePrefix}slo', 12)
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      {
        name: 'slo-owner'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, 'specops-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: '${namePrefix}: scoring, drift and rollouts'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: loadTextContent('../../monitoring/workbook.json')
  }
}

var alerts = [
  {
    name: 'p95-latency'
    description: 'p95 scoring latency over the latency SLO'
    severity: 2
    query: loadTextContent('../../monitoring/kql/alert-p95-latency.kql')
    column: 'p95_latency_ms'
    dimension: 'deployment'
    threshold: json(string(latencySloMs))
  }
  {
    name: 'error-rate'
    description: 'Server error rate over the availability SLO allowance'
    severity: 1
    query: loadTextContent('../../monitoring/kql/alert-error-rate.kql')
    column: 'error_rate'
    dimension: 'deployment'
    threshold: json(errorRateSlo)
  }
  {
    name: 'drift'
    description: 'A feature drifted past the monitor threshold'
    severity: 3
    query: loadTextContent('../../monitoring/kql/alert-drift.kql')
    column: 'drift'
    dimension: 'feature'
    threshold: json(driftThreshold)
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in alerts: {
  name: 'alert-${namePrefix}-${alert.name}'
  location: location
  tags: tags
  properties: {
    displayName: '${namePrefix}: ${alert.description}'
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: alert.query
          timeAggregation: 'Maximum'
          metricMeasureColumn: alert.column
          operator: 'GreaterThan'
          threshold: alert.threshold
          dimensions: [
            {
              name: alert.dimension
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output workbookId string = workbook.id
output actionGroupId string = actionGroup.id
