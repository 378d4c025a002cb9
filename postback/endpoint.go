package postback

// Endpoint is what the last path segment of a postback URL selects (docs/partner-api.md#endpoints).
type Endpoint uint8

const (
	EndpointUnknown Endpoint = iota
	EndpointUpdateRevenue
	EndpointUpdateTags
	EndpointUpdateFields
	EndpointCallCompleted
)

// Webhook types, as configured per webhook (docs/operations.md#webhooks-and-keys).
const (
	TypeUpdateRevenue = "update_revenue"
	TypeUpdateTags    = "update_tags"
	TypeUpdateFields  = "update_fields"
	TypeCallCompleted = "call_completed"
)

// EndpointFromSegment maps a URL path segment to its endpoint.
func EndpointFromSegment(segment string) Endpoint {
	switch segment {
	case "update-revenue":
		return EndpointUpdateRevenue
	case "update-tags":
		return EndpointUpdateTags
	case "update-fields":
		return EndpointUpdateFields
	case "call-completed":
		return EndpointCallCompleted
	}
	return EndpointUnknown
}

// EndpointOfType maps a webhook type to the endpoint that serves it.
func EndpointOfType(webhookType string) Endpoint {
	switch webhookType {
	case TypeUpdateRevenue:
		return EndpointUpdateRevenue
	case TypeUpdateTags:
		return EndpointUpdateTags
	case TypeUpdateFields:
		return EndpointUpdateFields
	case TypeCallCompleted:
		return EndpointCallCompleted
	}
	return EndpointUnknown
}

// Segment is the URL path segment of the endpoint.
func (e Endpoint) Segment() string {
	switch e {
	case EndpointUpdateRevenue:
		return "update-revenue"
	case EndpointUpdateTags:
		return "update-tags"
	case EndpointUpdateFields:
		return "update-fields"
	case EndpointCallCompleted:
		return "call-completed"
	}
	return ""
}

// Type is the webhook type the endpoint serves.
func (e Endpoint) Type() string {
	switch e {
	case EndpointUpdateRevenue:
		return TypeUpdateRevenue
	case EndpointUpdateTags:
		return TypeUpdateTags
	case EndpointUpdateFields:
		return TypeUpdateFields
	case EndpointCallCompleted:
		return TypeCallCompleted
	}
	return ""
}

// accepts is the set of fields the endpoint takes (docs/partner-api.md#endpoints).
func (e Endpoint) accepts() fieldSet {
	switch e {
	case EndpointUpdateRevenue:
		return fieldSet(1) << fieldRevenue
	case EndpointUpdateTags:
		return fieldSet(1)<<fieldAdd | fieldSet(1)<<fieldRemove
	case EndpointUpdateFields:
		return allFields
	}
	return 0
}
