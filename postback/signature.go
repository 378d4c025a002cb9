package postback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Standard Webhooks (standardwebhooks.com) request signing, as
// docs/partner-api.md#signed-postbacks describes it for partners.

// The headers of a signed request.
const (
	HeaderWebhookID        = "Webhook-Id"
	HeaderWebhookTimestamp = "Webhook-Timestamp"
	HeaderWebhookSignature = "Webhook-Signature"
)

// SignatureTolerance is how far webhook-timestamp may be from now, either
// way: a captured request replays for at most this long.
const SignatureTolerance = 5 * time.Minute

// SigningSecretPrefix starts every signing secret.
const SigningSecretPrefix = "whsec_"

// Signing secrets are at least 16 bytes (128 bits) and at most 64, the
// range Standard Webhooks libraries generate and accept.
const (
	minSecretBytes = 16
	maxSecretBytes = 64
)

// ParseSigningSecret decodes a whsec_<base64> secret into the HMAC key.
// The error never holds the secret.
func ParseSigningSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("signing_secret is empty (is its environment variable set?)")
	}
	b64, ok := strings.CutPrefix(s, SigningSecretPrefix)
	if !ok {
		return nil, errors.New("signing_secret must start with " + SigningSecretPrefix + " (caddy postback new-secret makes one)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("signing_secret must be " + SigningSecretPrefix + " followed by standard base64")
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return nil, errors.New("signing_secret must decode to 16 to 64 bytes, not " + strconv.Itoa(len(key)))
	}
	return key, nil
}

// Sign returns the webhook-signature entry ("v1,<base64>") of a request
// with id msgID, Unix time timestamp and body, under the decoded secret.
func Sign(secret []byte, msgID, timestamp string, body []byte) string {
	mac := newSigningKey(secret).sum(msgID, timestamp, body)
	return "v1," + base64.StdEncoding.EncodeToString(mac[:])
}

// signingKey is one decoded secret with a pool of HMACs keyed with it: a
// new HMAC costs five allocations and two hash blocks, a reset one none.
type signingKey struct {
	key  []byte
	macs sync.Pool // of *signer
}

type signer struct {
	mac     hash.Hash
	scratch []byte
}

func newSigningKey(key []byte) *signingKey {
	return &signingKey{key: key}
}

// sum is HMAC-SHA256(key, msgID "." timestamp "." body).
func (k *signingKey) sum(msgID, timestamp string, body []byte) [sha256.Size]byte {
	s, _ := k.macs.Get().(*signer)
	if s == nil {
		s = &signer{mac: hmac.New(sha256.New, k.key), scratch: make([]byte, 0, 64+sha256.Size)}
	} else {
		s.mac.Reset()
	}
	s.scratch = append(append(append(append(s.scratch[:0], msgID...), '.'), timestamp...), '.')
	s.mac.Write(s.scratch)
	s.mac.Write(body)
	s.scratch = s.mac.Sum(s.scratch[:0])
	var out [sha256.Size]byte
	copy(out[:], s.scratch)
	k.macs.Put(s)
	return out
}

var strictBase64 = base64.StdEncoding.Strict()

// nextV1Signature returns the decoded MAC of the first well-formed
// "v1,<base64>" entry of a webhook-signature header and the header after
// it; ok is false when no such entry is left. Entries are separated by
// spaces; those of another version or that do not decode to 32 bytes are
// skipped. The MAC is returned by value: no allocation per request.
func nextV1Signature(header string) (mac [sha256.Size]byte, rest string, ok bool) {
	var buf [sha256.Size + 3]byte
	for header != "" {
		var entry string
		entry, header, _ = strings.Cut(header, " ")
		b64, ok := strings.CutPrefix(entry, "v1,")
		// 32 bytes are 44 base64 characters with one '='.
		if !ok || len(b64) != base64.StdEncoding.EncodedLen(sha256.Size) {
			continue
		}
		// Strict: one MAC has one spelling, no spare bits set before the '='.
		n, err := strictBase64.Decode(buf[:], unsafe.Slice(unsafe.StringData(b64), len(b64)))
		if err != nil || n != sha256.Size {
			continue
		}
		copy(mac[:], buf[:n])
		return mac, header, true
	}
	return mac, "", false
}

// Messages of the 401s of a signed request (docs/partner-api.md#signed-postbacks).
const (
	MessageTimestampFormat = "webhook-timestamp must be Unix time in seconds"
	MessageTimestampOld    = "webhook-timestamp is more than 5 minutes old: sign each request when it is sent"
	MessageTimestampFuture = "webhook-timestamp is more than 5 minutes in the future: check the sender's clock"
	MessageBadSignature    = "invalid webhook-signature: no v1 signature matches webhook-id.webhook-timestamp.body under the webhook's signing secret"
	MessageWebhookIDFormat = "webhook-id must be 1 to 255 printable ASCII characters without spaces"
)

// messageMissingHeader is the 401 message of a signed request without
// header name.
func messageMissingHeader(name string) string {
	return "missing " + name + " header: a signed request carries webhook-id, webhook-timestamp and webhook-signature"
}

// checkSignedHeaders checks that a signed request carries all three
// headers, a sane webhook-id and a timestamp within SignatureTolerance of
// now, before any HMAC is computed.
func checkSignedHeaders(c *Credentials, now time.Time) *Error {
	switch {
	case c.MessageID == "":
		return NewError(401, messageMissingHeader("webhook-id"))
	case c.Timestamp == "":
		return NewError(401, messageMissingHeader("webhook-timestamp"))
	case c.Signature == "":
		return NewError(401, messageMissingHeader("webhook-signature"))
	}
	if len(c.MessageID) > 255 || strings.IndexFunc(c.MessageID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return NewError(401, MessageWebhookIDFormat)
	}
	// Base 10 takes digits only: no sign, no underscore. 18 digits cannot
	// overflow.
	ts, err := strconv.ParseUint(c.Timestamp, 10, 64)
	if len(c.Timestamp) > 18 || err != nil {
		return NewError(401, MessageTimestampFormat)
	}
	sent := time.Unix(int64(ts), 0)
	switch {
	case now.Sub(sent) > SignatureTolerance:
		return NewError(401, MessageTimestampOld)
	case sent.Sub(now) > SignatureTolerance:
		return NewError(401, MessageTimestampFuture)
	}
	return nil
}

// verifySignature returns the index of the secret under which one of the
// header's v1 signatures matches, or -1. Each secret costs one HMAC over
// the body; every comparison is constant-time.
func verifySignature(secrets []*signingKey, c *Credentials, body []byte) int {
	for i, secret := range secrets {
		want := secret.sum(c.MessageID, c.Timestamp, body)
		for mac, rest, ok := nextV1Signature(c.Signature); ok; mac, rest, ok = nextV1Signature(rest) {
			if hmac.Equal(mac[:], want[:]) {
				return i
			}
		}
	}
	return -1
}
