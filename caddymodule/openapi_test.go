package caddymodule_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
	"github.com/tidwall/gjson"
)

// apiContract checks requests to the partner endpoints and their answers
// against an OpenAPI document (docs/openapi.yaml), so that the document
// cannot drift from the code. libopenapi-validator validates OpenAPI 3.1
// with a JSON Schema 2020-12 validator (type arrays, const,
// dependentRequired), which the document uses.
type apiContract struct {
	mu sync.Mutex // the validator's caches are not documented as safe for concurrent use
	v  validator.Validator
}

func newAPIContract(doc []byte) (*apiContract, error) {
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(d, config.WithURLEncodedBodyValidation())
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, verrs[0]
	}
	return &apiContract{v: v}, nil
}

var (
	partnerAPIOnce sync.Once
	partnerAPI     *apiContract
	partnerAPIErr  error
)

// docsContract is docs/openapi.yaml, loaded once.
func docsContract(t testing.TB) *apiContract {
	t.Helper()
	partnerAPIOnce.Do(func() {
		doc, err := os.ReadFile("../docs/openapi.yaml")
		if err != nil {
			partnerAPIErr = err
			return
		}
		partnerAPI, partnerAPIErr = newAPIContract(doc)
	})
	if partnerAPIErr != nil {
		t.Fatalf("docs/openapi.yaml: %v", partnerAPIErr)
	}
	return partnerAPI
}

var partnerEndpoints = map[string]bool{"update-revenue": true, "update-tags": true, "update-fields": true, "call-completed": true}

// check returns every way one exchange disagrees with the document. The
// answer is always checked. The request is checked when the edge took it
// (the answer lists calls): what the code accepts, the document must
// accept too. A refused request is malformed on purpose, and its answer
// is what is checked.
func (c *apiContract) check(req *http.Request, body []byte, status int, header http.Header, answer []byte) []string {
	if !strings.HasPrefix(req.URL.Path, "/postback/") {
		return nil
	}
	code := gjson.GetBytes(answer, "error.code").String()
	switch {
	case !partnerEndpoints[path.Base(req.URL.Path)]:
		// No operation of the document: the path is no endpoint.
		if status != http.StatusNotFound || code != "not_found" {
			return []string{"an unknown endpoint answered " + http.StatusText(status) + " " + string(answer) + ", want 404 not_found"}
		}
		return nil
	case req.Method != http.MethodGet && req.Method != http.MethodPost:
		if status != http.StatusMethodNotAllowed || code != "method_not_allowed" || header.Get("Allow") != "GET, POST" {
			return []string{"method " + req.Method + " answered " + string(answer) + ", want 405 method_not_allowed with Allow: GET, POST"}
		}
		return nil
	}
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	vreq.ContentLength = int64(len(body))
	if len(body) > 0 && vreq.Header.Get("Content-Type") == "" {
		// A body without a Content-Type is read as JSON (partner-api#request-format).
		vreq.Header.Set("Content-Type", "application/json")
	}
	resp := &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader(answer)), Request: vreq}
	var problems []string
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok, errs := c.v.ValidateHttpResponse(vreq, resp); !ok {
		for _, e := range errs {
			problems = append(problems, "answer "+e.Error())
		}
	}
	if gjson.GetBytes(answer, "call_log_ids").Exists() {
		vreq.Body = io.NopCloser(bytes.NewReader(body))
		if ok, errs := c.v.ValidateHttpRequest(vreq); !ok {
			for _, e := range errs {
				problems = append(problems, "request "+e.Error())
			}
		}
	}
	return problems
}

// checkedTransport checks every exchange with the partner endpoints
// against docs/openapi.yaml and fails the test on a mismatch.
type checkedTransport struct {
	t        testing.TB
	contract *apiContract
	next     http.RoundTripper
}

func (c *checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(answer))
	if err != nil {
		return resp, nil // the caller reads the short body and sees
	}
	for _, p := range c.contract.check(req, body, resp.StatusCode, resp.Header, answer) {
		c.t.Errorf("docs/openapi.yaml: %s %s (status %d): %s", req.Method, req.URL.RequestURI(), resp.StatusCode, p)
	}
	return resp, nil
}

// A document that disagrees with the edge is caught: each case changes
// one schema of docs/openapi.yaml in memory and replays a real exchange
// against it.
func TestOpenAPIContractCatchesDrift(t *testing.T) {
	doc, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	store := newScriptedStore(t)
	store.set("drift-gone", "gone")
	startEdge(t, edgeConfig(store.URL, "", ""))

	exchange := func(method, url, contentType, body string) (*http.Request, []byte, *http.Response, []byte) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return req, []byte(body), resp, answer
	}
	fields := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	for _, tt := range []struct {
		name, from, to        string
		method, url, ct, body string
	}{
		{"an answer's error code the document does not list",
			"enum: [not_found, rejected,", "enum: [rejected,",
			"POST", fields, jsonType, `{"call_log_id":"drift-gone","converted":true}`},
		{"an answer without a field the document requires",
			"required: [call_log_ids, failed_call_log_ids]", "required: [call_log_ids, failed_call_log_ids, ignored]",
			"POST", fields, jsonType, `{"call_log_id":"drift-ok","converted":true}`},
		{"a dry run's answer with a field the document does not know",
			"        patch:\n          $ref: '#/components/schemas/Patch'\n", "",
			"POST", fields, jsonType, `{"call_log_id":"drift-ok","converted":true,"dry_run":true}`},
		{"a request the edge accepts and the document refuses",
			"pattern: '^(1|0|", "pattern: '^(0|",
			"GET", fields + "&call_log_id=drift-ok&converted=1", "", ""},
		{"a header the document no longer promises",
			"    X-Request-Id:\n      description: The request's id, as sent to the call store.\n      required: true\n      schema:\n        type: string\n",
			"    X-Request-Id:\n      description: The request's id, as sent to the call store.\n      required: true\n      schema:\n        type: integer\n",
			"GET", fields + "&call_log_id=drift-ok&converted=1", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(string(doc), tt.from) != 1 {
				t.Fatalf("docs/openapi.yaml no longer holds %q once; the test changes nothing", tt.from)
			}
			drifted, err := newAPIContract([]byte(strings.Replace(string(doc), tt.from, tt.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			req, body, resp, answer := exchange(tt.method, tt.url, tt.ct, tt.body)
			if p := docsContract(t).check(req, body, resp.StatusCode, resp.Header, answer); len(p) != 0 {
				t.Fatalf("docs/openapi.yaml itself disagrees: %v", p)
			}
			if p := drifted.check(req, body, resp.StatusCode, resp.Header, answer); len(p) == 0 {
				t.Fatalf("the changed document passed %s %s → %d %s", tt.method, tt.url, resp.StatusCode, answer)
			}
		})
	}
}

// Every example of docs/openapi.yaml, of a request body or an answer, is
// valid by the schema it illustrates.
func TestOpenAPIExamplesMatchTheirSchemas(t *testing.T) {
	doc, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatal(err)
	}
	model, err := d.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	schemas := schema_validation.NewSchemaValidator()
	checked := 0
	checkContent := func(where string, content *orderedmap.Map[string, *v3.MediaType]) {
		for mediaType, mt := range content.FromOldest() {
			for name, ex := range mt.Examples.FromOldest() {
				var value any
				if err := ex.Value.Decode(&value); err != nil {
					t.Fatalf("%s %s example %s: %v", where, mediaType, name, err)
				}
				if ok, errs := schemas.ValidateSchemaObject(mt.Schema.Schema(), value); !ok {
					for _, e := range errs {
						t.Errorf("%s %s example %s: %v", where, mediaType, name, e)
					}
				}
				checked++
			}
		}
	}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := method + " " + path
			if op.RequestBody != nil {
				checkContent(where+" request", op.RequestBody.Content)
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				checkContent(where+" "+code, resp.Content)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d examples; the walk no longer finds them", checked)
	}
}
