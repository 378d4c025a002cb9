package postback

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks specification's published test vector.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = "1614265330"
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// clock is a settable clock for a Keyring.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func vectorKeyring(t testing.TB, c *clock) *Keyring {
	t.Helper()
	w, err := NewWebhookFrom(WebhookOptions{Name: "vector", Type: TypeUpdateFields, SigningSecrets: []string{vectorSecret}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKeyring([]*Webhook{w})
	if err != nil {
		t.Fatal(err)
	}
	k.Now = c.now
	return k
}

func TestStandardWebhooksVector(t *testing.T) {
	t.Parallel()
	secret, err := ParseSigningSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(secret, vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Errorf("partner-api#signed-postbacks Sign of the published vector = %s, want %s", got, vectorSignature)
	}
	sent := time.Unix(1614265330, 0)
	c := &clock{t: sent}
	k := vectorKeyring(t, c)
	creds := Credentials{MessageID: vectorID, Timestamp: vectorTimestamp, Signature: vectorSignature}
	for _, tt := range []struct {
		name string
		at   time.Time
		want string // "" verifies
	}{
		{"partner-api#signed-postbacks the published vector verifies at its time", sent, ""},
		{"partner-api#signed-postbacks 4m59s later still verifies", sent.Add(5*time.Minute - time.Second), ""},
		{"partner-api#signed-postbacks 6 minutes later it is stale", sent.Add(6 * time.Minute), MessageTimestampOld},
		{"partner-api#signed-postbacks 6 minutes before it is from the future", sent.Add(-6 * time.Minute), MessageTimestampFuture},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.t = tt.at
			a, err := k.Identify(EndpointUpdateFields, &creds)
			if err != nil {
				t.Fatalf("Identify: %v", err)
			}
			err = k.VerifySignature(EndpointUpdateFields, &a, &creds, []byte(vectorBody))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want == "" && (a.Webhook == nil || a.Webhook.Name != "vector" || a.MessageID != vectorID || a.SecretIndex != 0 || a.KeyIndex != -1):
				t.Fatalf("auth = %+v", a)
			case tt.want != "" && (err == nil || err.Status != http.StatusUnauthorized || err.Message != tt.want):
				t.Fatalf("error %v, want 401 %q", err, tt.want)
			}
		})
	}
}

// signedCreds signs body for now under secret, with the key if given.
func signedCreds(t *testing.T, secret, key, id string, now time.Time, body string) Credentials {
	t.Helper()
	s, err := ParseSigningSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	return Credentials{Key: key, MessageID: id, Timestamp: ts, Signature: Sign(s, id, ts, []byte(body))}
}

func newSecret(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return SigningSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	now := time.Unix(1767225600, 0)
	oldSecret, newSec, revSecret, bothSecret := newSecret(t), newSecret(t), newSecret(t), newSecret(t)
	fields, err := NewWebhookFrom(WebhookOptions{Name: "fields", Type: TypeUpdateFields, Account: "acct_1", SigningSecrets: []string{newSec}})
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := NewWebhookFrom(WebhookOptions{Name: "rev", Type: TypeUpdateRevenue, SigningSecrets: []string{revSecret}})
	both, err := NewWebhookFrom(WebhookOptions{Name: "both", Type: TypeUpdateTags, Keys: []Key{{Key: "both-key"}}, SigningSecrets: []string{bothSecret}, RequireKeyAndSignature: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := mustWebhook(t, "plain", TypeUpdateFields, "", "plain-key", "")
	k, err := NewKeyring([]*Webhook{fields, rev, both, plain})
	if err != nil {
		t.Fatal(err)
	}
	k.Now = func() time.Time { return now }
	body := `{"call_log_id":"abc-123","converted":true}`
	sign := func(secret, key string) Credentials { return signedCreds(t, secret, key, "msg_1", now, body) }

	twoSigs := sign(newSec, "")
	twoSigs.Signature = sign(oldSecret, "").Signature + " " + twoSigs.Signature
	otherVersions := sign(newSec, "")
	otherVersions.Signature = "v1a,AAAA v2," + strings.TrimPrefix(otherVersions.Signature, "v1,") + " " + otherVersions.Signature
	tampered := sign(newSec, "")
	noTimestamp := sign(newSec, "")
	noTimestamp.Timestamp = ""
	noID := sign(newSec, "")
	noID.MessageID = ""
	noSig := sign(newSec, "")
	noSig.Signature = ""
	badTS := sign(newSec, "")
	badTS.Timestamp = "1767225600.5"
	badID := sign(newSec, "")
	badID.MessageID = "msg 1"

	tests := []struct {
		name    string
		ep      Endpoint
		creds   Credentials
		body    string
		want    *Webhook
		status  int
		message string
	}{
		{"partner-api#signed-postbacks a signed request without key finds its webhook", EndpointUpdateFields, sign(newSec, ""), body, fields, 0, ""},
		{"partner-api#signed-postbacks the second of two signatures is valid", EndpointUpdateFields, twoSigs, body, fields, 0, ""},
		{"partner-api#signed-postbacks entries other than v1 are skipped", EndpointUpdateFields, otherVersions, body, fields, 0, ""},
		{"partner-api#signed-postbacks a body changed by a byte", EndpointUpdateFields, tampered, strings.Replace(body, "true", "True", 1), nil, 401, MessageBadSignature},
		{"partner-api#signed-postbacks a secret of no webhook", EndpointUpdateFields, sign(oldSecret, ""), body, nil, 401, MessageBadSignature},
		{"partner-api#signed-postbacks no webhook-timestamp", EndpointUpdateFields, noTimestamp, body, nil, 401, messageMissingHeader("webhook-timestamp")},
		{"partner-api#signed-postbacks no webhook-id", EndpointUpdateFields, noID, body, nil, 401, messageMissingHeader("webhook-id")},
		{"partner-api#signed-postbacks no webhook-signature", EndpointUpdateFields, noSig, body, nil, 401, messageMissingHeader("webhook-signature")},
		{"partner-api#signed-postbacks a timestamp that is not Unix seconds", EndpointUpdateFields, badTS, body, nil, 401, MessageTimestampFormat},
		{"partner-api#signed-postbacks a webhook-id with a space", EndpointUpdateFields, badID, body, nil, 401, MessageWebhookIDFormat},
		{"partner-api#signed-postbacks a signature of another type's webhook: 403", EndpointUpdateFields, sign(revSecret, ""), body, nil, 403, "this signature belongs to a webhook of type update_revenue and cannot be used on update-fields"},
		{"partner-api#signed-postbacks key and signature", EndpointUpdateTags, sign(bothSecret, "both-key"), body, both, 0, ""},
		{"partner-api#signed-postbacks require key_and_signature: signature alone is 401", EndpointUpdateTags, sign(bothSecret, ""), body, nil, 401, MessageMissingKey + ": this webhook requires its key as well as a signature"},
		{"partner-api#signed-postbacks require key_and_signature: key alone is 401", EndpointUpdateTags, Credentials{Key: "both-key"}, body, nil, 401, messageMissingHeader("webhook-id")},
		{"partner-api#signed-postbacks the key with a wrong signature is 401", EndpointUpdateTags, sign(newSec, "both-key"), body, nil, 401, MessageBadSignature},
		{"partner-api#signed-postbacks headers on a webhook without secret are not checked", EndpointUpdateFields, sign(oldSecret, "plain-key"), body, plain, 0, ""},
		{"partner-api#authentication no key, no signature", EndpointUpdateFields, Credentials{}, body, nil, 401, MessageMissingKey},
		{"partner-api#signed-postbacks headers but no signed webhook of the type: missing key", EndpointCallCompleted, sign(newSec, ""), body, nil, 401, MessageMissingKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := k.Identify(tt.ep, &tt.creds)
			if err == nil {
				err = k.VerifySignature(tt.ep, &a, &tt.creds, []byte(tt.body))
			}
			if tt.status == 0 {
				if err != nil || a.Webhook != tt.want || a.NeedsSignature() {
					t.Fatalf("auth %+v, %v; want %s", a, err, tt.want.Name)
				}
				if wantID := tt.creds.MessageID; tt.want.Signed() && a.MessageID != wantID {
					t.Errorf("MessageID %q, want the verified webhook-id %q", a.MessageID, wantID)
				}
				if !tt.want.Signed() && a.MessageID != "" {
					t.Errorf("MessageID %q of an unverified webhook-id", a.MessageID)
				}
				return
			}
			if err == nil || err.Status != tt.status || err.Message != tt.message {
				t.Fatalf("error %v, want %d %q", err, tt.status, tt.message)
			}
			if strings.Contains(string(AppendError(nil, err)), tt.creds.Signature[min(3, len(tt.creds.Signature)):]) && tt.creds.Signature != "" {
				t.Errorf("operations#keys-rotation-and-signatures the answer shows the signature")
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	expires := time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)
	w, err := NewWebhookFrom(WebhookOptions{Name: "acme", Type: TypeUpdateFields, Keys: []Key{
		{Key: "old-key", Expires: expires},
		{SHA256: sha256Hex("new-key")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: expires.Add(-time.Second)}
	k, err := NewKeyring([]*Webhook{w})
	if err != nil {
		t.Fatal(err)
	}
	k.Now = c.now
	check := func(key string, wantIndex int, wantErr string) {
		t.Helper()
		a, perr := k.Identify(EndpointUpdateFields, &Credentials{Key: key})
		if wantErr != "" {
			if perr == nil || perr.Status != 401 || perr.Message != wantErr {
				t.Errorf("operations#keys-rotation-and-signatures at %s key %s: %v, want 401 %q", c.t, key, perr, wantErr)
			}
			return
		}
		if perr != nil || a.Webhook != w || a.KeyIndex != wantIndex {
			t.Errorf("operations#keys-rotation-and-signatures at %s key %s: %+v %v, want key %d", c.t, key, a, perr, wantIndex)
		}
	}
	check("old-key", 0, "")
	check("new-key", 1, "")
	if got := w.ExpiredKeys(c.t); len(got) != 0 {
		t.Errorf("ExpiredKeys before = %v", got)
	}
	c.t = expires
	check("old-key", 0, MessageKeyExpired)
	check("new-key", 1, "")
	check("other-key", 0, "invalid auth key")
	if got := w.ExpiredKeys(c.t); len(got) != 1 || got[0] != 0 {
		t.Errorf("ExpiredKeys after = %v, want [0]", got)
	}
}

func TestWebhookOptionsRefusals(t *testing.T) {
	t.Parallel()
	s1, s2 := newSecret(t), newSecret(t)
	bad := []struct {
		name string
		opts WebhookOptions
		says string
	}{
		{"a secret without whsec_", WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{strings.TrimPrefix(s1, "whsec_")}}, "must start with whsec_"},
		{"a secret that is not base64", WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{"whsec_!!!"}}, "base64"},
		{"a secret of 8 bytes", WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{"whsec_AAAAAAAAAAA="}}, "16 to 64 bytes"},
		{"an empty secret", WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{""}}, "environment variable"},
		{"require key_and_signature without key", WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{s1}, RequireKeyAndSignature: true}, "require key_and_signature needs"},
		{"the second of two keys empty", WebhookOptions{Name: "a", Type: TypeUpdateFields, Keys: []Key{{Key: "k"}, {}}}, "key 1: key is empty"},
		{"nothing at all", WebhookOptions{Name: "a", Type: TypeUpdateFields}, "no key_sha256 or signing_secret"},
	}
	for _, tt := range bad {
		t.Run("operations#keys-rotation-and-signatures "+tt.name, func(t *testing.T) {
			_, err := NewWebhookFrom(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want one saying %q", err, tt.says)
			}
			if strings.Contains(err.Error(), strings.TrimPrefix(s1, "whsec_")) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
	a, _ := NewWebhookFrom(WebhookOptions{Name: "a", Type: TypeUpdateFields, SigningSecrets: []string{s1}})
	b, _ := NewWebhookFrom(WebhookOptions{Name: "b", Type: TypeUpdateRevenue, SigningSecrets: []string{s2, s1}})
	if _, err := NewKeyring([]*Webhook{a, b}); err == nil || !strings.Contains(err.Error(), "same signing_secret") || !strings.Contains(err.Error(), "a and b") {
		t.Errorf("operations#keys-rotation-and-signatures one secret on two webhooks: %v, want a load error naming both", err)
	}
	twice, _ := NewWebhookFrom(WebhookOptions{Name: "c", Type: TypeUpdateFields, Keys: []Key{{Key: "k"}, {SHA256: sha256Hex("k")}}})
	if _, err := NewKeyring([]*Webhook{twice}); err == nil || !strings.Contains(err.Error(), "keys 0 and 1 are the same key") {
		t.Errorf("one key twice in a webhook: %v", err)
	}
	// A key already expired at load is accepted (the handler warns).
	past, err := NewWebhookFrom(WebhookOptions{Name: "d", Type: TypeUpdateFields, Keys: []Key{{Key: "k", Expires: time.Unix(0, 0)}}})
	if err != nil || len(past.ExpiredKeys(time.Now())) != 1 {
		t.Errorf("operations#keys-rotation-and-signatures a key expired at load: %v, %v; want accepted and listed as expired", past, err)
	}
}

func TestNextV1Signature(t *testing.T) {
	t.Parallel()
	mac := strings.TrimPrefix(vectorSignature, "v1,")
	for _, tt := range []struct {
		header string
		want   int
	}{
		{vectorSignature, 1},
		{vectorSignature + " " + vectorSignature, 2},
		{"v1a," + mac + " v2," + mac + " " + vectorSignature, 1},
		{"v1," + mac[:43], 0},
		{"v1," + mac + "=", 0},
		{"v1,", 0},
		{"", 0},
		{"  " + vectorSignature + "  ", 1},
		{"v1," + strings.Replace(mac, "+", "-", 1), 0}, // URL-safe base64 is not the standard's
		{"V1," + mac, 0},
	} {
		n := 0
		for _, rest, ok := nextV1Signature(tt.header); ok; _, rest, ok = nextV1Signature(rest) {
			n++
		}
		if n != tt.want {
			t.Errorf("partner-api#signed-postbacks %q: %d v1 signatures, want %d", tt.header, n, tt.want)
		}
	}
}

// BenchmarkVerifySignature is the whole cost of checking a signed
// single-id postback: the timestamp, one HMAC-SHA256 over id, timestamp
// and body, and a constant-time comparison.
func BenchmarkVerifySignature(b *testing.B) {
	secret := newSecret(b)
	w, err := NewWebhookFrom(WebhookOptions{Name: "bench", Type: TypeUpdateFields, SigningSecrets: []string{secret}})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := NewKeyring([]*Webhook{w})
	body := []byte(`{"call_log_id":"abc-123","converted":true,"revenue_paid_out":25.50}`)
	key, _ := ParseSigningSecret(secret)
	now := time.Now()
	k.Now = func() time.Time { return now }
	ts := strconv.FormatInt(now.Unix(), 10)
	c := Credentials{MessageID: "msg_2Lf8m4w0t7dJ", Timestamp: ts, Signature: Sign(key, "msg_2Lf8m4w0t7dJ", ts, body)}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		a, perr := k.Identify(EndpointUpdateFields, &c)
		if perr == nil {
			perr = k.VerifySignature(EndpointUpdateFields, &a, &c, body)
		}
		if perr != nil || a.Webhook != w {
			b.Fatal(perr)
		}
	}
}

// BenchmarkAuthenticateKey is the query-key path, for comparison.
func BenchmarkAuthenticateKey(b *testing.B) {
	w, _ := NewWebhook("bench", TypeUpdateFields, "", "bench-key-0123456789", "")
	k, _ := NewKeyring([]*Webhook{w})
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := k.Authenticate(EndpointUpdateFields, "bench-key-0123456789"); perr != nil {
			b.Fatal(perr)
		}
	}
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// partner-api#signed-postbacks: webhook-timestamp is decimal digits only; a
// sign, an underscore, a space, a fraction or other digits is refused as
// not Unix seconds before any HMAC.
func TestSignedTimestampDigitsOnly(t *testing.T) {
	t.Parallel()
	now := time.Unix(1614265330, 0)
	for _, ts := range []string{"+1614265330", "-1614265330", "1_614265330", "1614265330 ", " 1614265330", "0x60378b72", "1614265330.0", "١٦١٤٢٦٥٣٣٠", "0001614265330000000"} {
		c := Credentials{MessageID: "msg_1", Timestamp: ts, Signature: vectorSignature}
		if perr := checkSignedHeaders(&c, now); perr == nil || perr.Status != 401 || perr.Message != MessageTimestampFormat {
			t.Errorf("%q: %v, want 401 %q", ts, perr, MessageTimestampFormat)
		}
	}
	c := Credentials{MessageID: "msg_1", Timestamp: "001614265330", Signature: vectorSignature}
	if perr := checkSignedHeaders(&c, now); perr != nil {
		t.Errorf("leading zeros: %v, want accepted", perr)
	}
}
