package caddymodule

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/postback"
)

// KeyConfig is one further key of a webhook (docs/operations.md#keys-rotation-and-signatures).
type KeyConfig struct {
	// Key is the auth key, normally a placeholder such as {env.ACME_KEY_2}.
	Key string `json:"key,omitempty"`
	// KeySHA256 is the hex SHA-256 of the key.
	KeySHA256 string `json:"key_sha256,omitempty"`
	// Expires is when the key stops authenticating, as an RFC 3339 time;
	// empty: never.
	Expires string `json:"expires,omitempty"`
}

// RequireKeyAndSignature is the value of WebhookConfig.Require that asks
// a signed request for its key too.
const RequireKeyAndSignature = "key_and_signature"

// newWebhook builds one configured webhook, with its placeholders
// replaced, and warns of keys that have already expired.
func (h *Handler) newWebhook(wc WebhookConfig, repl *caddy.Replacer) (*postback.Webhook, error) {
	opts := postback.WebhookOptions{Name: wc.Name, Type: wc.Type, Account: repl.ReplaceAll(wc.Account, "")}
	switch wc.Require {
	case "":
	case RequireKeyAndSignature:
		opts.RequireKeyAndSignature = true
	default:
		return nil, errors.New("webhook " + wc.Name + ": require must be key_and_signature, not " + wc.Require)
	}
	keys := make([]KeyConfig, 0, 1+len(wc.Keys))
	if wc.Key != "" || wc.KeySHA256 != "" || wc.KeyExpires != "" || len(wc.Keys) == 0 {
		keys = append(keys, KeyConfig{Key: wc.Key, KeySHA256: wc.KeySHA256, Expires: wc.KeyExpires})
	}
	keys = append(keys, wc.Keys...)
	for i, kc := range keys {
		k := postback.Key{Key: repl.ReplaceAll(kc.Key, ""), SHA256: kc.KeySHA256}
		if kc.Expires != "" {
			t, err := time.Parse(time.RFC3339, kc.Expires)
			if err != nil {
				return nil, errors.New("webhook " + wc.Name + ": key " + strconv.Itoa(i) + ": expires " + strconv.Quote(kc.Expires) + " must be an RFC 3339 time such as 2026-12-31T00:00:00Z")
			}
			k.Expires = t
		}
		opts.Keys = append(opts.Keys, k)
	}
	for _, s := range wc.SigningSecrets {
		opts.SigningSecrets = append(opts.SigningSecrets, repl.ReplaceAll(s, ""))
	}
	w, err := postback.NewWebhookFrom(opts)
	if err != nil {
		return nil, err
	}
	for _, i := range w.ExpiredKeys(time.Now()) {
		h.logger.Warn("webhook key already expired: it is refused with 401 \"key expired\"; remove it from the config",
			zap.String("webhook", wc.Name), zap.Int("key_index", i), zap.Time("expires", opts.Keys[i].Expires))
	}
	return w, nil
}

// admitted is a request that passed authentication, its webhook's rate
// limit and the body read.
type admitted struct {
	auth postback.Auth
	body []byte
	kind postback.BodyKind
	// name labels the answer's metrics: the webhook once it is
	// authenticated, or once its key is known for a refusal that follows.
	name string
}

func (a *admitted) webhookName() string { return a.name }

// admit authenticates a request (docs/partner-api.md#authentication, partner-api#signed-postbacks),
// applies its webhook's rate limit and reads its body once, for both the
// signature and the parser. A request with a key meets its rate limit
// before its body is read; a request signed without a key can only be
// matched to its webhook after.
func (h *Handler) admit(r *http.Request, ep postback.Endpoint, requestID string) (admitted, *postback.Error) {
	creds := postback.Credentials{
		Key:       h.authKey(r),
		MessageID: headerValue(r, postback.HeaderWebhookID),
		Timestamp: headerValue(r, postback.HeaderWebhookTimestamp),
		Signature: headerValue(r, postback.HeaderWebhookSignature),
	}
	var adm admitted
	var perr *postback.Error
	adm.auth, perr = h.keyring.Identify(ep, &creds)
	if perr != nil {
		if perr.Status == http.StatusUnauthorized && strings.HasPrefix(perr.Message, postback.MessageMissingKey) {
			perr.Message = h.missingKeyMessage(ep, perr.Message)
		}
		return adm, perr
	}
	byKey := adm.auth.Webhook
	if byKey != nil {
		if perr := h.limit(r, byKey); perr != nil {
			adm.name = byKey.Name
			return adm, perr
		}
	}
	adm.body, adm.kind, perr = h.readBody(r)
	if perr != nil {
		if byKey != nil {
			adm.name = byKey.Name
		}
		return adm, perr
	}
	if adm.auth.NeedsSignature() {
		if perr := h.keyring.VerifySignature(ep, &adm.auth, &creds, adm.body); perr != nil {
			if perr.Status == http.StatusUnauthorized && strings.HasPrefix(perr.Message, postback.MessageMissingKey) {
				perr.Message = h.missingKeyMessage(ep, perr.Message)
			}
			return adm, perr
		}
		if byKey == nil {
			if perr := h.limit(r, adm.auth.Webhook); perr != nil {
				adm.name = adm.auth.Webhook.Name
				return adm, perr
			}
		}
	}
	adm.name = adm.auth.Webhook.Name
	countAuth(adm.name, &adm.auth)
	// The indexes, never a key, secret or signature.
	if ce := h.logger.Check(zap.DebugLevel, "postback authenticated"); ce != nil {
		ce.Write(zap.String("webhook", adm.name), zap.String("request_id", requestID), zap.Int("key_index", adm.auth.KeyIndex),
			zap.Int("secret_index", adm.auth.SecretIndex), zap.String("webhook_id", adm.auth.MessageID))
	}
	return adm, nil
}

// missingKeyMessage says where a key goes, and, for a request with
// neither key nor signature, that a signature may stand in for the key
// where a webhook of ep's type is signed.
func (h *Handler) missingKeyMessage(ep postback.Endpoint, msg string) string {
	signable := msg == postback.MessageMissingKey && h.keyring.HasSigned(ep)
	msg += ": send it as the " + h.AuthParam + " query parameter or as Authorization: Bearer <key>"
	if signable {
		msg += ", or sign the request (webhook-id, webhook-timestamp, webhook-signature)"
	}
	return msg
}

// headerValue is a header given in canonical form; several lines of it
// are joined by spaces, as webhook-signature entries are.
func headerValue(r *http.Request, canonical string) string {
	v := r.Header[canonical]
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	}
	return strings.Join(v, " ")
}
