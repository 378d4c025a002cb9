package postback

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Webhook is one partner integration (docs/operations.md#webhooks-and-keys). Its keys are kept only
// as SHA-256 digests; several may be valid at once while a partner
// switches (docs/operations.md#keys-rotation-and-signatures).
type Webhook struct {
	Name    string
	Type    string
	Account string
	keys    []webhookKey
	// secrets are the decoded Standard Webhooks signing secrets; with any,
	// every request must be signed.
	secrets []*signingKey
	// requireKey asks a signed request for its key as well
	// (require key_and_signature).
	requireKey bool
}

type webhookKey struct {
	digest  [sha256.Size]byte
	expires time.Time // zero: never
}

// Key is one auth key of a webhook as configured: the key itself or the
// hex SHA-256 of it, and when it stops authenticating.
type Key struct {
	Key     string
	SHA256  string
	Expires time.Time // zero: never
}

// WebhookOptions is what a webhook is made of.
type WebhookOptions struct {
	Name    string
	Type    string
	Account string
	Keys    []Key
	// SigningSecrets are whsec_<base64> secrets; any of them may sign.
	SigningSecrets []string
	// RequireKeyAndSignature refuses a signed request without its key.
	RequireKeyAndSignature bool
}

// NewWebhook makes a webhook from a plain key or from the hex SHA-256 of
// the key; exactly one of the two is given.
func NewWebhook(name, webhookType, account, key, keySHA256 string) (*Webhook, error) {
	return NewWebhookFrom(WebhookOptions{Name: name, Type: webhookType, Account: account, Keys: []Key{{Key: key, SHA256: keySHA256}}})
}

// NewWebhookFrom makes a webhook with any number of keys and signing
// secrets; it needs at least one of either. An error names the webhook,
// never a key or secret.
func NewWebhookFrom(s WebhookOptions) (*Webhook, error) {
	w := &Webhook{Name: s.Name, Type: s.Type, Account: s.Account, requireKey: s.RequireKeyAndSignature}
	if s.Name == "" {
		return nil, errors.New("webhook needs a name")
	}
	if EndpointOfType(s.Type) == EndpointUnknown {
		return nil, errors.New("webhook " + s.Name + ": type must be one of update_revenue, update_tags, update_fields, call_completed")
	}
	keys := s.Keys
	if len(keys) == 1 && keys[0] == (Key{}) && len(s.SigningSecrets) > 0 {
		keys = nil // a signed webhook without a key
	}
	for i, k := range keys {
		which := "webhook " + s.Name + ": "
		if len(keys) > 1 {
			which += "key " + strconv.Itoa(i) + ": "
		}
		var wk webhookKey
		switch {
		case k.Key != "" && k.SHA256 != "":
			return nil, errors.New(which + "give key or key_sha256, not both")
		case k.Key != "":
			wk.digest = sha256.Sum256([]byte(k.Key))
		case k.SHA256 != "":
			d, err := hex.DecodeString(strings.TrimSpace(k.SHA256))
			if err != nil || len(d) != sha256.Size {
				return nil, errors.New(which + "key_sha256 must be 64 hex digits")
			}
			copy(wk.digest[:], d)
		case len(s.SigningSecrets) == 0 && len(keys) == 1:
			// Most often a placeholder such as {env.ACME_KEY} that is not set.
			return nil, errors.New(which + "key is empty (is its environment variable set?) and no key_sha256 or signing_secret is given")
		default:
			return nil, errors.New(which + "key is empty (is its environment variable set?)")
		}
		wk.expires = k.Expires
		w.keys = append(w.keys, wk)
	}
	for i, secret := range s.SigningSecrets {
		key, err := ParseSigningSecret(secret)
		if err != nil {
			which := "webhook " + s.Name + ": "
			if len(s.SigningSecrets) > 1 {
				which += "signing_secret " + strconv.Itoa(i) + ": "
			}
			return nil, errors.New(which + err.Error())
		}
		w.secrets = append(w.secrets, newSigningKey(key))
	}
	if len(w.keys) == 0 && len(w.secrets) == 0 {
		return nil, errors.New("webhook " + s.Name + ": key is empty (is its environment variable set?) and no key_sha256 or signing_secret is given")
	}
	if s.RequireKeyAndSignature && (len(w.keys) == 0 || len(w.secrets) == 0) {
		return nil, errors.New("webhook " + s.Name + ": require key_and_signature needs a key (or key_sha256) and a signing_secret")
	}
	return w, nil
}

// Signed reports whether the webhook's requests must be signed.
func (w *Webhook) Signed() bool { return len(w.secrets) > 0 }

// ExpiredKeys lists the indexes of the keys whose expiry is not after now.
func (w *Webhook) ExpiredKeys(now time.Time) []int {
	var out []int
	for i, k := range w.keys {
		if !k.expires.IsZero() && !now.Before(k.expires) {
			out = append(out, i)
		}
	}
	return out
}

// numEndpoints sizes arrays indexed by Endpoint.
const numEndpoints = EndpointCallCompleted + 1

// Keyring finds the webhook of a request's key or signature.
type Keyring struct {
	webhooks []*Webhook
	// signed holds the webhooks with signing secrets, by endpoint.
	signed [numEndpoints][]*Webhook
	// Now is the clock of key expiry and signature timestamps; nil means
	// time.Now.
	Now func() time.Time
}

// NewKeyring refuses two webhooks with one name, one key or one signing
// secret, and one webhook with a key or secret twice.
func NewKeyring(webhooks []*Webhook) (*Keyring, error) {
	for i, a := range webhooks {
		if err := a.checkOwnDuplicates(); err != nil {
			return nil, err
		}
		for _, b := range webhooks[:i] {
			if a.Name == b.Name {
				return nil, errors.New("webhook " + a.Name + " is defined twice")
			}
			for _, ka := range a.keys {
				for _, kb := range b.keys {
					if ka.digest == kb.digest {
						return nil, errors.New("webhooks " + b.Name + " and " + a.Name + " have the same key")
					}
				}
			}
			for _, sa := range a.secrets {
				for _, sb := range b.secrets {
					if hmac.Equal(sa.key, sb.key) {
						return nil, errors.New("webhooks " + b.Name + " and " + a.Name + " have the same signing_secret; a secret belongs to one webhook")
					}
				}
			}
		}
	}
	k := &Keyring{webhooks: webhooks}
	for _, w := range webhooks {
		if w.Signed() {
			ep := EndpointOfType(w.Type)
			k.signed[ep] = append(k.signed[ep], w)
		}
	}
	return k, nil
}

func (w *Webhook) checkOwnDuplicates() error {
	for i, a := range w.keys {
		for j, b := range w.keys[:i] {
			if a.digest == b.digest {
				return errors.New("webhook " + w.Name + ": keys " + strconv.Itoa(j) + " and " + strconv.Itoa(i) + " are the same key")
			}
		}
	}
	for i, a := range w.secrets {
		for j, b := range w.secrets[:i] {
			if hmac.Equal(a.key, b.key) {
				return errors.New("webhook " + w.Name + ": signing secrets " + strconv.Itoa(j) + " and " + strconv.Itoa(i) + " are the same")
			}
		}
	}
	return nil
}

// Lookup returns the webhook whose key is key.
func (k *Keyring) Lookup(key string) *Webhook {
	w, _ := k.lookup(key)
	return w
}

// lookup returns the webhook and the index of its key that is key. It
// compares the digest with every key of every webhook in constant time,
// so timing tells nothing about which keys exist or how close a guess
// came (docs/operations.md#webhooks-and-keys).
func (k *Keyring) lookup(key string) (*Webhook, int) {
	digest := sha256.Sum256([]byte(key))
	var found *Webhook
	index := -1
	for _, w := range k.webhooks {
		for i := range w.keys {
			if subtle.ConstantTimeCompare(digest[:], w.keys[i].digest[:]) == 1 {
				found, index = w, i
			}
		}
	}
	return found, index
}

// HasSigned reports whether a webhook of ep's type takes signed requests.
func (k *Keyring) HasSigned(ep Endpoint) bool {
	return ep < numEndpoints && len(k.signed[ep]) > 0
}

// Messages of authentication failures.
const (
	// MessageMissingKey is the 401 message of a request without a key.
	MessageMissingKey = "missing auth key"
	// MessageKeyExpired is the 401 message of a key past its expires; it
	// does not say which key.
	MessageKeyExpired = "key expired"
)

// Credentials are what a request offers to prove which webhook sent it.
type Credentials struct {
	// Key is the auth key (query parameter or bearer token).
	Key string
	// MessageID, Timestamp and Signature are the webhook-id,
	// webhook-timestamp and webhook-signature headers.
	MessageID, Timestamp, Signature string
}

func (c *Credentials) signed() bool {
	return c.MessageID != "" || c.Timestamp != "" || c.Signature != ""
}

// Auth is who a request was found to come from.
type Auth struct {
	// Webhook is nil until a keyless signed request's signature is
	// verified.
	Webhook *Webhook
	// KeyIndex is the index (0, 1, ...) of the webhook's key that matched;
	// -1 when the request carried no key.
	KeyIndex int
	// SecretIndex is the index of the signing secret that verified the
	// signature; -1 when none did.
	SecretIndex int
	// MessageID is the webhook-id of a verified signature, "" otherwise.
	// It is the idempotency key of a request that gives no other
	// (docs/partner-api.md#signed-postbacks).
	MessageID string

	needsSignature bool
}

// NeedsSignature reports whether VerifySignature must run once the body
// is read.
func (a *Auth) NeedsSignature() bool { return a.needsSignature }

// Authenticate applies docs/partner-api.md#authentication for endpoint ep to a request with key
// alone: no key or an unknown key is 401, a key of another webhook type
// 403, and a key of a signed webhook 401 for want of a signature.
func (k *Keyring) Authenticate(ep Endpoint, key string) (*Webhook, *Error) {
	c := Credentials{Key: key}
	a, err := k.Identify(ep, &c)
	if err == nil {
		err = k.VerifySignature(ep, &a, &c, nil)
	}
	if err != nil {
		return nil, err
	}
	return a.Webhook, nil
}

// Identify is the first step of authentication, before the body is read
// (docs/partner-api.md#authentication, partner-api#signed-postbacks). With a key it finds
// the key's webhook: an unknown key is 401, an expired one 401 "key
// expired", a key of another webhook type 403. Without a key, a request
// carrying any webhook-* header is left to VerifySignature to find its
// webhook; one with neither is 401.
func (k *Keyring) Identify(ep Endpoint, c *Credentials) (Auth, *Error) {
	a := Auth{KeyIndex: -1, SecretIndex: -1}
	if c.Key == "" {
		if c.signed() && k.HasSigned(ep) {
			a.needsSignature = true
			return a, nil
		}
		return a, NewError(401, MessageMissingKey)
	}
	w, i := k.lookup(c.Key)
	if w == nil {
		return a, NewError(401, "invalid auth key")
	}
	if exp := w.keys[i].expires; !exp.IsZero() && !k.now().Before(exp) {
		return a, NewError(401, MessageKeyExpired)
	}
	if w.Type != ep.Type() {
		return a, NewError(403, "this key belongs to a webhook of type "+w.Type+" and cannot be used on "+ep.Segment())
	}
	a.Webhook, a.KeyIndex, a.needsSignature = w, i, w.Signed()
	return a, nil
}

// VerifySignature is the second step, once the body is read, for a
// request Identify left needing a signature: the three headers must be
// there, the timestamp within 5 minutes of now, and one v1 signature must
// match under a secret of the webhook, which, for a request without key,
// is the webhook of ep's type whose secret verifies. The body of a GET is
// empty.
func (k *Keyring) VerifySignature(ep Endpoint, a *Auth, c *Credentials, body []byte) *Error {
	if !a.needsSignature {
		return nil
	}
	if err := checkSignedHeaders(c, k.now()); err != nil {
		return err
	}
	if a.Webhook != nil {
		i := verifySignature(a.Webhook.secrets, c, body)
		if i < 0 {
			return NewError(401, MessageBadSignature)
		}
		a.SecretIndex, a.MessageID, a.needsSignature = i, c.MessageID, false
		return nil
	}
	for _, w := range k.signed[ep] {
		if i := verifySignature(w.secrets, c, body); i >= 0 {
			if w.requireKey {
				return NewError(401, MessageMissingKey+": this webhook requires its key as well as a signature")
			}
			a.Webhook, a.SecretIndex, a.MessageID, a.needsSignature = w, i, c.MessageID, false
			return nil
		}
	}
	// A secret of another type's webhook: the same 403 a key gets. Only a
	// request that failed pays for these HMACs.
	for other := range k.signed {
		if Endpoint(other) == ep {
			continue
		}
		for _, w := range k.signed[other] {
			if verifySignature(w.secrets, c, body) >= 0 {
				return NewError(403, "this signature belongs to a webhook of type "+w.Type+" and cannot be used on "+ep.Segment())
			}
		}
	}
	return NewError(401, MessageBadSignature)
}

func (k *Keyring) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}
