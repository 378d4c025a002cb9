package postback

import (
	"fmt"
	"strings"
	"testing"
)

var (
	benchSingle = []byte(`{"call_log_id":"abc-123","converted":true,"revenue_paid_out":25.50,"disposition":"sale"}`)
	benchBatch  = func() []byte {
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = fmt.Sprintf(`"call-%04d"`, i)
		}
		return []byte(`{"call_log_id":[` + strings.Join(ids, ",") + `],"converted":true,"revenue_paid_out":25.50,"disposition":"sale"}`)
	}()
)

// benchParse is the edge's work on a body before any call-store request:
// parse, validate, build the PATCH body.
func benchParse(b *testing.B, body []byte, query string) {
	p := testParser()
	patch := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, err := p.Parse(EndpointUpdateFields, query, body, BodyJSON)
		if err != nil {
			b.Fatal(err)
		}
		patch = req.Update.AppendPatch(patch[:0])
	}
}

func BenchmarkParseSingle(b *testing.B) { benchParse(b, benchSingle, "moja_auth_key=demo-fields-key") }

func BenchmarkParseBatch50(b *testing.B) { benchParse(b, benchBatch, "moja_auth_key=demo-fields-key") }

func BenchmarkParseQuery(b *testing.B) {
	p := testParser()
	q := "moja_auth_key=demo-fields-key&call_log_id=abc-123&converted=1&revenue_paid_out=25.50&sub1=spring"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(EndpointUpdateFields, q, nil, BodyNone); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRejectInvalid(b *testing.B) {
	p := testParser()
	body := []byte(`{"call_log_id":"abc-123","converted":"maybe"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(EndpointUpdateFields, "", body, BodyJSON); err == nil {
			b.Fatal("accepted")
		}
	}
}

func benchResponse(b *testing.B, n int) {
	res := &Result{Calls: make([]CallResult, n)}
	for i := range res.Calls {
		res.Calls[i] = CallResult{CallLogID: fmt.Sprintf("call-%04d", i)}
	}
	res.Calls[n-1].Outcome = Outcome{Class: NotFound, Message: "call not found"}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendResponse(buf[:0], res)
	}
}

func BenchmarkResponseSingle(b *testing.B)  { benchResponse(b, 1) }
func BenchmarkResponseBatch50(b *testing.B) { benchResponse(b, 50) }
