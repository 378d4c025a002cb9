package postback

import "context"

// traceKey holds a postback's trace context in a context.
type traceKey struct{}

type traceContext struct{ parent, state string }

// WithTrace returns ctx carrying the postback's W3C trace context (the
// traceparent and tracestate headers), which Edge.Apply sends with every
// call-store request for it and stores with every update it queues
// (docs/operations.md#call-store-transport). Without a traceparent, ctx is returned as it is.
func WithTrace(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, traceContext{traceparent, tracestate})
}

// traceOf is the trace context WithTrace put in ctx, if any.
func traceOf(ctx context.Context) (traceparent, tracestate string) {
	tc, _ := ctx.Value(traceKey{}).(traceContext)
	return tc.parent, tc.state
}
