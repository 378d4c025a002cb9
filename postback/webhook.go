package postback

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// Webhook is one partner integration (docs/operations.md#webhooks-and-keys). Its key is kept only as
// a SHA-256 digest.
type Webhook struct {
	Name    string
	Type    string
	Account string
	digest  [sha256.Size]byte
}

// NewWebhook makes a webhook from a plain key or from the hex SHA-256 of
// the key; exactly one of the two is given.
func NewWebhook(name, webhookType, account, key, keySHA256 string) (*Webhook, error) {
	w := &Webhook{Name: name, Type: webhookType, Account: account}
	if name == "" {
		return nil, errors.New("webhook needs a name")
	}
	if EndpointOfType(webhookType) == EndpointUnknown {
		return nil, errors.New("webhook " + name + ": type must be one of update_revenue, update_tags, update_fields, call_completed")
	}
	switch {
	case key != "" && keySHA256 != "":
		return nil, errors.New("webhook " + name + ": give key or key_sha256, not both")
	case key != "":
		w.digest = sha256.Sum256([]byte(key))
	case keySHA256 != "":
		d, err := hex.DecodeString(strings.TrimSpace(keySHA256))
		if err != nil || len(d) != sha256.Size {
			return nil, errors.New("webhook " + name + ": key_sha256 must be 64 hex digits")
		}
		copy(w.digest[:], d)
	default:
		// Most often a placeholder such as {env.ACME_KEY} that is not set.
		return nil, errors.New("webhook " + name + ": key is empty (is its environment variable set?) and no key_sha256 is given")
	}
	return w, nil
}

// Keyring finds the webhook of an auth key.
type Keyring struct {
	webhooks []*Webhook
}

// NewKeyring refuses two webhooks with one name or one key.
func NewKeyring(webhooks []*Webhook) (*Keyring, error) {
	for i, a := range webhooks {
		for _, b := range webhooks[:i] {
			if a.Name == b.Name {
				return nil, errors.New("webhook " + a.Name + " is defined twice")
			}
			if a.digest == b.digest {
				return nil, errors.New("webhooks " + b.Name + " and " + a.Name + " have the same key")
			}
		}
	}
	return &Keyring{webhooks: webhooks}, nil
}

// Lookup returns the webhook whose key is key. It compares the digest with
// every webhook's in constant time, so timing tells nothing about which
// keys exist or how close a guess came (docs/operations.md#webhooks-and-keys).
func (k *Keyring) Lookup(key string) *Webhook {
	digest := sha256.Sum256([]byte(key))
	var found *Webhook
	for _, w := range k.webhooks {
		if subtle.ConstantTimeCompare(digest[:], w.digest[:]) == 1 {
			found = w
		}
	}
	return found
}

// MessageMissingKey is the 401 message of a request without a key.
const MessageMissingKey = "missing auth key"

// Authenticate applies docs/partner-api.md#authentication for endpoint ep: no key or an unknown key
// is 401, a key of another webhook type 403.
func (k *Keyring) Authenticate(ep Endpoint, key string) (*Webhook, *Error) {
	if key == "" {
		return nil, NewError(401, MessageMissingKey)
	}
	w := k.Lookup(key)
	if w == nil {
		return nil, NewError(401, "invalid auth key")
	}
	if w.Type != ep.Type() {
		return nil, NewError(403, "this key belongs to a webhook of type "+w.Type+" and cannot be used on "+ep.Segment())
	}
	return w, nil
}
