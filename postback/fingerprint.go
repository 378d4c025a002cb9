package postback

import (
	"crypto/sha256"
	"encoding/hex"
)

// Fingerprint identifies the normalised postback of req on ep
// (docs/partner-api.md#safe-retries): the endpoint, the identifiers (the phone number in E.164, or
// the ids without duplicates, in order) and the PATCH body. Whatever the
// spelling (a GET pixel, a form, a JSON body), the same update has the same
// fingerprint; the auth key, unknown parameters and the idempotency key
// itself are not part of it.
func (req *Request) Fingerprint(ep Endpoint) string {
	buf := make([]byte, 0, 256)
	buf = append(buf, ep.Segment()...)
	// Ids hold no control characters, so a NUL ends each part unambiguously.
	buf = append(buf, 0)
	if req.PhoneNumber != "" {
		buf = append(buf, "phone_number\x00"...)
		buf = append(buf, req.PhoneNumber...)
		buf = append(buf, 0)
	} else {
		buf = append(buf, "call_log_id\x00"...)
		for _, id := range req.CallLogIDs {
			buf = append(buf, id...)
			buf = append(buf, 0)
		}
	}
	buf = append(buf, 0)
	buf = req.Update.AppendPatch(buf)
	sum := sha256.Sum256(buf)
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:])
}
