package postback

import (
	"crypto/hmac"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzSignatureHeader feeds the webhook-signature parser any header
// (seeds in testdata/fuzz/FuzzSignatureHeader). Invariants: it never
// panics; every MAC it returns has its "v1,<base64>" entry in the header,
// and what it leaves to read is a shorter tail of the header; a valid
// signature appended as a further entry always verifies, whatever came
// before it; and without it, a header verifies only if it already held
// the valid entry.
func FuzzSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		vectorSignature,
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v2,abc",
		"v1,",
		"",
		"   ",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
		"v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,,v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\tv1,x",
	} {
		f.Add(seed)
	}
	secret, err := ParseSigningSecret(vectorSecret)
	if err != nil {
		f.Fatal(err)
	}
	k := vectorKeyring(f, &clock{t: time.Unix(1614265330, 0)})
	want := newSigningKey(secret).sum(vectorID, vectorTimestamp, []byte(vectorBody))
	f.Fuzz(func(t *testing.T, header string) {
		held := false
		for mac, rest, ok := nextV1Signature(header); ok; mac, rest, ok = nextV1Signature(rest) {
			entry := "v1," + base64.StdEncoding.EncodeToString(mac[:])
			if !strings.Contains(header, entry) {
				t.Fatalf("yielded %s, which %q does not hold", entry, header)
			}
			if !strings.HasSuffix(header, rest) || len(rest) >= len(header) {
				t.Fatalf("rest %q is not a shorter tail of %q", rest, header)
			}
			held = held || hmac.Equal(mac[:], want[:])
		}
		verify := func(h string) bool {
			c := Credentials{MessageID: vectorID, Timestamp: vectorTimestamp, Signature: h}
			a, perr := k.Identify(EndpointUpdateFields, &c)
			if perr != nil {
				t.Fatalf("Identify: %v", perr)
			}
			return k.VerifySignature(EndpointUpdateFields, &a, &c, []byte(vectorBody)) == nil
		}
		if got := verify(header); got != held {
			t.Fatalf("%q verifies %v, but holds the valid signature: %v", header, got, held)
		}
		if !verify(header + " " + vectorSignature) {
			t.Fatalf("%q followed by a valid signature does not verify", header)
		}
	})
}
