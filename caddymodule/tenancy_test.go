package caddymodule_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// partner-api#accounts: a key of one account can never read, change or even learn of a
// call of another account. Run against the reference call store, which
// scopes by X-Account-Id as a platform's must.
func TestTenancyThroughReferenceCallStore(t *testing.T) {
	storePort := freePort()
	seed, _ := filepath.Abs("../testdata/calls.json")
	config := edgeConfig(fmt.Sprintf("http://127.0.0.1:%d", storePort), "", "") + fmt.Sprintf(`
http://127.0.0.1:%d {
	postback_callstore {
		seed %s
	}
}
`, storePort, seed)
	tester := startEdge(t, config)
	other := edgeURL("/postback/update-fields?moja_auth_key=" + otherAcctKey)
	storeCall := func(id, account string) string {
		t.Helper()
		_, body := send(t, tester, "GET", fmt.Sprintf("http://127.0.0.1:%d/v1/calls/%s", storePort, id), "", "")
		return body
	}
	before := storeCall("abc-123", "")

	// The answers for acct_1's calls are those for calls that do not exist.
	answer := func(body string) (int, string) {
		status, out := send(t, tester, "POST", other, jsonType, body)
		return status, out
	}
	for _, id := range []string{"abc-123", "live-001", "no-such-call"} {
		status, body := answer(fmt.Sprintf(`{"call_log_id":%q,"converted":false,"reason":"hijack"}`, id))
		want := fmt.Sprintf(`{"call_log_ids":[],"failed_call_log_ids":[%q],"errors":{%q:{"code":"not_found","message":"call not found"}}}`, id, id)
		if status != 404 || body != want {
			t.Errorf("%s through acct_2: %d %s\nwant 404 %s", id, status, body, want)
		}
	}
	status, body := answer(`{"phone_number":"+15551234567","converted":false}`)
	if status != 404 || gjson.Get(body, "errors.+15551234567.code").String() != "not_found" {
		t.Errorf("acct_1's phone number through acct_2: %d %s", status, body)
	}
	status, body = answer(`{"call_log_id":["abc-123","other-001"],"reason":"mine"}`)
	if status != 200 || gjson.Get(body, "call_log_ids").Raw != `["other-001"]` {
		t.Errorf("a batch mixing accounts: %d %s", status, body)
	}
	if after := storeCall("abc-123", ""); after != before || strings.Contains(after, "hijack") {
		t.Errorf("acct_1's call changed:\nbefore %s\nafter  %s", before, after)
	}
	if _, queued := adminDo(t, "GET", "/postback/queue/live-001"); gjson.Get(queued, "pending.#").Int() != 0 {
		t.Errorf("acct_2's update to acct_1's live call was queued: %s", queued)
	}
}
