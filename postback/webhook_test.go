package postback

import (
	"net/http"
	"strings"
	"testing"
)

// passwordSHA256 is the key_sha256 of docs/operations.md#configuration example: "password".
const passwordSHA256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func TestNewWebhook(t *testing.T) {
	t.Parallel()
	const secret = "acme-s3cret-key"
	ok := []struct {
		name, typ, key, sha string
	}{
		{"acme", TypeUpdateFields, secret, ""},
		{"rev", TypeUpdateRevenue, secret, ""},
		{"tags", TypeUpdateTags, secret, ""},
		{"platform", TypeCallCompleted, "", passwordSHA256},
		{"upper", TypeCallCompleted, "", strings.ToUpper(passwordSHA256)},
		{"spaced", TypeCallCompleted, "", " " + passwordSHA256 + "\n"},
	}
	for _, tt := range ok {
		if w, err := NewWebhook(tt.name, tt.typ, "acct_1", tt.key, tt.sha); err != nil || w.Name != tt.name || w.Type != tt.typ || w.Account != "acct_1" {
			t.Errorf("operations#webhooks-and-keys NewWebhook(%s, %s) = %+v, %v", tt.name, tt.typ, w, err)
		}
	}
	bad := []struct {
		test, name, typ, key, sha, says string
	}{
		{"operations#webhooks-and-keys no key (an unset {env.X} placeholder)", "acme", TypeUpdateFields, "", "", "environment variable"},
		{"operations#webhooks-and-keys both key and key_sha256", "acme", TypeUpdateFields, secret, passwordSHA256, "not both"},
		{"operations#webhooks-and-keys key_sha256 not hex", "acme", TypeCallCompleted, "", strings.Repeat("zz", 32), "64 hex digits"},
		{"operations#webhooks-and-keys key_sha256 too short", "acme", TypeCallCompleted, "", passwordSHA256[:62], "64 hex digits"},
		{"operations#webhooks-and-keys key_sha256 too long", "acme", TypeCallCompleted, "", passwordSHA256 + "00", "64 hex digits"},
		{"operations#webhooks-and-keys key_sha256 of odd length", "acme", TypeCallCompleted, "", passwordSHA256[:63], "64 hex digits"},
		{"operations#webhooks-and-keys type with dashes", "acme", "update-fields", secret, "", "type must be one of"},
		{"operations#webhooks-and-keys type in capitals", "acme", "UPDATE_FIELDS", secret, "", "type must be one of"},
		{"operations#webhooks-and-keys no type", "acme", "", secret, "", "type must be one of"},
		{"operations#webhooks-and-keys no name", "", TypeUpdateFields, secret, "", "name"},
	}
	for _, tt := range bad {
		t.Run(tt.test, func(t *testing.T) {
			w, err := NewWebhook(tt.name, tt.typ, "acct_1", tt.key, tt.sha)
			if err == nil {
				t.Fatalf("accepted: %+v", w)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not say %q", msg, tt.says)
			}
			if tt.name != "" && !strings.Contains(msg, tt.name) {
				t.Errorf("error %q does not name the webhook", msg)
			}
			if strings.Contains(msg, secret) || (tt.sha != "" && strings.Contains(msg, strings.TrimSpace(tt.sha))) {
				t.Errorf("operations#webhooks-and-keys error %q shows the key", msg)
			}
		})
	}
}

func mustWebhook(t *testing.T, name, typ, account, key, sha string) *Webhook {
	t.Helper()
	w, err := NewWebhook(name, typ, account, key, sha)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()
	t.Run("operations#webhooks-and-keys a keyring refuses two webhooks with one name or one key", func(t *testing.T) {
		a := mustWebhook(t, "acme", TypeUpdateFields, "acct_1", "key-a", "")
		b := mustWebhook(t, "beta", TypeUpdateRevenue, "acct_2", "key-b", "")
		if _, err := NewKeyring([]*Webhook{a, b}); err != nil {
			t.Fatalf("operations#webhooks-and-keys two distinct webhooks: %v", err)
		}
		if _, err := NewKeyring(nil); err != nil {
			t.Fatalf("no webhooks: %v", err)
		}
		sameName := mustWebhook(t, "acme", TypeUpdateTags, "acct_3", "key-c", "")
		if _, err := NewKeyring([]*Webhook{a, b, sameName}); err == nil || !strings.Contains(err.Error(), "acme") {
			t.Errorf("operations#webhooks-and-keys two webhooks named acme: %v, want an error naming it", err)
		}
		sameKey := mustWebhook(t, "gamma", TypeUpdateTags, "acct_3", "key-a", "")
		err := func() error { _, err := NewKeyring([]*Webhook{a, b, sameKey}); return err }()
		if err == nil || !strings.Contains(err.Error(), "acme") || !strings.Contains(err.Error(), "gamma") {
			t.Errorf("operations#webhooks-and-keys two webhooks with one key: %v, want an error naming both", err)
		} else if strings.Contains(err.Error(), "key-a") {
			t.Errorf("operations#webhooks-and-keys error %q shows the key", err)
		}
		plain := mustWebhook(t, "plain", TypeCallCompleted, "", "password", "")
		hashed := mustWebhook(t, "hashed", TypeUpdateFields, "", "", passwordSHA256)
		if _, err := NewKeyring([]*Webhook{plain, hashed}); err == nil {
			t.Error("operations#webhooks-and-keys key password and key_sha256 of password: accepted, want the same-key error")
		}
	})
}

func TestKeyringAuthenticate(t *testing.T) {
	t.Parallel()
	acme := mustWebhook(t, "acme", TypeUpdateFields, "acct_1", "acme-key", "")
	rev := mustWebhook(t, "rev", TypeUpdateRevenue, "acct_1", "rev-key", "")
	platform := mustWebhook(t, "platform", TypeCallCompleted, "", "", passwordSHA256)
	k, err := NewKeyring([]*Webhook{acme, rev, platform})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ep     Endpoint
		key    string
		want   *Webhook
		status int
		code   string
	}{
		{"partner-api#authentication no key: 401", EndpointUpdateFields, "", nil, http.StatusUnauthorized, CodeUnauthorized},
		{"partner-api#authentication unknown key: 401", EndpointUpdateFields, "nope", nil, http.StatusUnauthorized, CodeUnauthorized},
		{"partner-api#authentication a key one character off: 401", EndpointUpdateFields, "acme-kez", nil, http.StatusUnauthorized, CodeUnauthorized},
		{"partner-api#authentication a key with a trailing space: 401", EndpointUpdateFields, "acme-key ", nil, http.StatusUnauthorized, CodeUnauthorized},
		{"partner-api#authentication a key of another type: 403", EndpointUpdateRevenue, "acme-key", nil, http.StatusForbidden, CodeForbidden},
		{"partner-api#authentication update_revenue key on update-fields: 403", EndpointUpdateFields, "rev-key", nil, http.StatusForbidden, CodeForbidden},
		{"partner-api#authentication partner key on call-completed: 403", EndpointCallCompleted, "acme-key", nil, http.StatusForbidden, CodeForbidden},
		{"partner-api#authentication the right key", EndpointUpdateFields, "acme-key", acme, 0, ""},
		{"partner-api#authentication update_revenue", EndpointUpdateRevenue, "rev-key", rev, 0, ""},
		{"operations#configuration key_sha256 of password matches the key password", EndpointCallCompleted, "password", platform, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, e := k.Authenticate(tt.ep, tt.key)
			if tt.status == 0 {
				if e != nil || w != tt.want {
					t.Errorf("Authenticate = %v, %v; want %s", w, e, tt.want.Name)
				}
				return
			}
			if e == nil || w != nil {
				t.Fatalf("Authenticate = %v, %v; want %d", w, e, tt.status)
			}
			if e.Status != tt.status || e.Code != tt.code {
				t.Errorf("error %d %s, want %d %s", e.Status, e.Code, tt.status, tt.code)
			}
			if tt.key != "" && strings.Contains(e.Message, tt.key) {
				t.Errorf("operations#webhooks-and-keys message %q shows the key", e.Message)
			}
			if body := string(AppendError(nil, e)); !strings.Contains(body, `"code":"`+tt.code+`"`) || (tt.key != "" && strings.Contains(body, tt.key)) {
				t.Errorf("body %s", body)
			}
		})
	}
	if w := k.Lookup("password"); w != platform {
		t.Errorf("operations#configuration Lookup(password) = %v, want platform", w)
	}
}
