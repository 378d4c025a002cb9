package postback

// Native fuzz targets for the parsers of docs/partner-api.md (#request-format to #responses) and the JSON writers
// behind them.
//
//	go test ./postback/ -run '^$' -fuzz '^FuzzParseJSON$' -fuzztime 6m -parallel 2
//
// Every target runs on a fixed clock (fuzzNow), so a corpus entry in
// testdata/fuzz/<FuzzName>/ gives the same answer whenever it runs, and
// `go test ./postback/ -run Fuzz` replays the seeds below and that corpus.

import (
	"bytes"
	"encoding/json"
	"io"
	"math/big"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fuzzNow is the clock of every fuzz target: the day of the release note.
var fuzzNow = time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)

func fuzzClock() time.Time { return fuzzNow }

// The parsers every input goes through: the defaults of a Caddyfile, the
// same in strict mode, small limits with another auth parameter and no
// default country code, so that the limits are reached by short inputs,
// and large limits.
var (
	fuzzLenient = &Parser{
		AuthParam: DefaultAuthParam, MaxBatch: DefaultMaxBatch, MaxAmount: DefaultMaxAmount,
		MaxTags: DefaultMaxTags, DefaultCountryCode: "1", Now: fuzzClock,
	}
	fuzzStrict = &Parser{
		AuthParam: DefaultAuthParam, MaxBatch: DefaultMaxBatch, MaxAmount: DefaultMaxAmount,
		MaxTags: DefaultMaxTags, DefaultCountryCode: "1", Now: fuzzClock, Strict: true,
	}
	fuzzTight = &Parser{
		AuthParam: "key", MaxBatch: 3, MaxAmount: Amount(100 * 10000),
		MaxTags: 2, DefaultCountryCode: "", Now: fuzzClock,
	}
	// fuzzWide takes batches past the 64 ids where de-duplication
	// switches to a map, and has a max_amount with decimals.
	fuzzWide = &Parser{
		AuthParam: DefaultAuthParam, MaxBatch: 200, MaxAmount: Amount(1234*10000 + 5000),
		MaxTags: 100, DefaultCountryCode: "44", Now: fuzzClock,
	}
	fuzzEndpoints = [...]Endpoint{EndpointUpdateRevenue, EndpointUpdateTags, EndpointUpdateFields}
)

// ---------------------------------------------------------------------------
// Seeds

// fuzzReleaseNoteBodies are the JSON bodies of the release notes, verbatim
// (indentation included), plus docs/operations.md#updating-a-call shape.
var fuzzReleaseNoteBodies = []string{
	"{\n  \"call_log_id\": \"abc-123\",\n  \"converted\": true,\n  \"revenue_paid_out\": 25.50\n}",
	"{\n  \"call_log_id\": [\"abc-123\", \"def-456\", \"ghi-789\"],\n  \"converted\": true,\n  \"revenue_paid_out\": 25.50\n}",
	"{\n  \"call_log_id\": [\"abc-123\", \"def-456\", \"ghi-789\"],\n  \"revenue_paid_out\": 25.50\n}",
	"{\n  \"call_log_id\": [\"abc-123\", \"def-456\", \"ghi-789\"],\n  \"add\": [{\"customer_type\": \"premium\"}],\n  \"remove\": [\"old_tag\"]\n}",
	"{\n  \"call_log_id\": [\"abc-123\", \"def-456\", \"ghi-789\"],\n  \"converted\": true,\n  \"revenue_paid_out\": 25.50,\n  \"disposition\": \"sale\"\n}",
	`{"call_log_id":"abc-123","converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":25.50,"publisher_paid_out":10,"reason":"sale","no_payout_reason":null,"add":{"customer_type":"premium"},"remove":["old_tag"]}`,
	`{"phone_number":"+1 (555) 123-4567","fields":{"converted":"yes","reason":"lead converted","no_payout_reason":"Condition not met","publisher_paid_out":"12.5"}}`,
	`{"call_log_id":"abc-123","fields":{"add":[{"tier":"gold"},{"source":"crm","score":7,"vip":true}],"remove":"old_tag"}}`,
	`{"call_log_id":"abc-123","converted":false,"call_converted_at":1774605600,"no_payout_reason":"caps_exceeded"}`,
	`{"call_log_id":"abc-123","call_converted_at":"1774605600123","moja_auth_key":"k","sub1":"x","fields":{"sub2":1}}`,
}

// fuzzJSONBodies are hostile JSON bodies: duplicates, nesting, NUL bytes,
// invalid UTF-8, huge numbers, exponents, Unicode digits and odd ids.
func fuzzJSONBodies() []string {
	deep := func(n int, open, close string) string {
		return `{"call_log_id":"a","converted":true,"x":` + strings.Repeat(open, n) + "1" + strings.Repeat(close, n) + "}"
	}
	var many17, manyIDs, manyTags, manyKeys strings.Builder
	many17.WriteString(`{"call_log_id":"a","converted":true`)
	for i := 0; i < 17; i++ {
		many17.WriteString(`,"k` + strconv.Itoa(i) + `":1`)
	}
	many17.WriteString(`,"k3":1}`)
	manyIDs.WriteString(`{"revenue_paid_out":"1","call_log_id":[`)
	for i := 0; i < 51; i++ {
		if i > 0 {
			manyIDs.WriteString(",")
		}
		manyIDs.WriteString(`"id-` + strconv.Itoa(i%50) + `"`)
	}
	manyIDs.WriteString(`]}`)
	manyTags.WriteString(`{"call_log_id":"a","add":{`)
	for i := 0; i < 51; i++ {
		if i > 0 {
			manyTags.WriteString(",")
		}
		manyTags.WriteString(`"t` + strconv.Itoa(i) + `":"v"`)
	}
	manyTags.WriteString(`},"remove":["x"]}`)
	manyKeys.WriteString(`{"call_log_id":"a","converted":1`)
	for i := 0; i < 2000; i++ {
		manyKeys.WriteString(`,"sub` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	manyKeys.WriteString("}")
	return []string{
		// Not a JSON object, or nothing.
		``, ` `, " \n\t\r", "\v", "\f", "\u00a0", "\u0085", "\u2028", "\ufeff{}", `{}`, `[]`, `null`, `"x"`, `1`, `{`, `}`, `{"call_log_id":`,
		`{"call_log_id":"a","converted":true}x`, `{"call_log_id":"a","converted":true}{}`, `{"call_log_id":"a",}`, `{'call_log_id':'a'}`,
		// Duplicates.
		`{"call_log_id":"a","converted":true,"converted":true}`,
		`{"call_log_id":"a","reason":"x","re\u0061son":"x"}`,
		`{"call_log_id":"a","reason":"x","disposition":"x"}`,
		`{"call_log_id":"a","reason":"x","disposition":"y"}`,
		`{"call_log_id":["a","a","b","a"],"converted":true}`,
		`{"call_log_id":"a","fields":{"reason":"x","reason":"x"}}`,
		`{"call_log_id":"a","fields":{"reason":"x"},"reason":"x"}`,
		`{"call_log_id":"a","add":[{"k":"1"},{"k":"1"}]}`,
		`{"call_log_id":"a","add":[{"k":"1"},{"k":"2"}]}`,
		`{"call_log_id":"a","add":[{"k":"1","k":"1"}]}`,
		`{"call_log_id":"a","add":{"k":"1"},"remove":["k","k"]}`,
		`{"call_log_id":"a","remove":["k","k"]}`,
		`{"call_log_id":"a","x":[{"d":1,"d":2}]}`,
		`{"call_log_id":"a","\ud800":1,"\udbff":2,"converted":1}`,
		`{"call_log_id":"a","\ud800":1,"\ufffd":2,"converted":1}`,
		many17.String(),
		manyIDs.String(),
		manyTags.String(),
		manyKeys.String(),
		// Nesting.
		deep(7, "[", "]"), deep(8, "[", "]"), deep(6, `{"y":`, "}"), deep(7, `{"y":`, "}"), deep(1000, "[", "]"),
		strings.Repeat("[", 100000),
		`{"call_log_id":"[[[[[[[[[[{{{{{{{{","converted":1}`,
		`{"call_log_id":"a\"[[[[[[[[[[","converted":1}`,
		`{"call_log_id":"a\\","x":[[[[[[[[1]]]]]]]],"converted":1}`,
		`{"call_log_id":"a","converted":1}]]]]]]]]]]`,
		// NUL bytes and control characters.
		"{\"call_log_id\":\"a\x00\",\"converted\":1}",
		"{\"call_log_id\":\"a\",\"converted\":1}\x00",
		"\x00{\"call_log_id\":\"a\",\"converted\":1}",
		`{"call_log_id":"a\u0000b","converted":1}`,
		`{"call_log_id":"a","reason":"a\u0000b"}`,
		`{"call_log_id":"a","reason":"line\nbreak"}`,
		`{"call_log_id":"a","converted":1,"\u0000":1}`,
		`{"call_log_id":"a","add":{"k":"v\u0007"}}`,
		`{"call_log_id":"a","reason":"\u2028\u2029<script>&amp;"}`,
		// Invalid UTF-8 and surrogates.
		"{\"call_log_id\":\"\xff\",\"converted\":1}",
		"{\"call_log_id\":\"a\",\"reason\":\"\xc3\x28\"}",
		"{\"call_log_id\":\"a\",\"converted\":1,\"\xed\xa0\x80\":1}",
		`{"call_log_id":"\ud800","converted":1}`,
		`{"call_log_id":"\udc00\ud800","converted":1}`,
		`{"call_log_id":"\ud83d\ude00","converted":1}`,
		`{"call_log_id":"a","reason":"\ud800\u0041"}`,
		`{"call_log_id":"a","reason":"\u00"}`,
		// Huge numbers and exponents.
		`{"call_log_id":"a","revenue_paid_out":1e309}`,
		`{"call_log_id":"a","revenue_paid_out":1E+2}`,
		`{"call_log_id":"a","revenue_paid_out":2.5e1}`,
		`{"call_log_id":"a","revenue_paid_out":99999999999999999999}`,
		`{"call_log_id":"a","revenue_paid_out":99999999999999.9999}`,
		`{"call_log_id":"a","revenue_paid_out":1000000.0001}`,
		`{"call_log_id":"a","revenue_paid_out":1000000.0000}`,
		`{"call_log_id":"a","revenue_paid_out":"1000000.00001"}`,
		`{"call_log_id":"a","revenue_paid_out":-0}`,
		`{"call_log_id":"a","revenue_paid_out":0.0000}`,
		`{"call_log_id":"a","revenue_paid_out":"00.5"}`,
		`{"call_log_id":"a","revenue_paid_out":".5"}`,
		`{"call_log_id":"a","revenue_paid_out":"5."}`,
		`{"call_log_id":"a","revenue_paid_out":"$25"}`,
		`{"call_log_id":"a","revenue_paid_out":"1,000"}`,
		`{"call_log_id":"a","revenue_paid_out":" 25"}`,
		`{"call_log_id":"a","revenue_paid_out":null}`,
		`{"call_log_id":"a","publisher_paid_out":[1]}`,
		`{"call_log_id":"a","call_converted_at":1.7746056e9}`,
		`{"call_log_id":"a","call_converted_at":9223372036854775808}`,
		`{"call_log_id":"a","call_converted_at":"0000000000"}`,
		`{"call_log_id":"a","call_converted_at":9999999999999}`,
		`{"call_log_id":"a","call_converted_at":1774692000}`,
		`{"call_log_id":"a","call_converted_at":1774692001}`,
		`{"call_log_id":"a","converted":1.0}`,
		`{"call_log_id":"a","converted":"TRUE"}`,
		`{"call_log_id":"a","converted":"Yes"}`,
		// Unicode digits.
		`{"call_log_id":"a","revenue_paid_out":"٢٥"}`,
		`{"call_log_id":"a","revenue_paid_out":"２５.５０"}`,
		`{"call_log_id":"a","call_converted_at":"１７７４６０５６００"}`,
		`{"phone_number":"+１５５５１２３４５６７","converted":1}`,
		`{"phone_number":"+१५५५१२३४५६७","converted":1}`,
		// Times.
		`{"call_log_id":"a","call_converted_at":"0001-01-01T00:00:00Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27T10:00:00.123456789Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27T10:00:00.1234567891Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-28T12:00:00Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-28T12:00:00.000000001Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27T10:00:00"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27 10:00:00Z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27t10:00:00z"}`,
		`{"call_log_id":"a","call_converted_at":"2026-03-27T10:00:00+24:00"}`,
		`{"call_log_id":"a","call_converted_at":"9999-12-31T23:59:59-23:59"}`,
		`{"call_log_id":"a","call_converted_at":true}`,
		// Ids with / .. % ? and spaces.
		`{"call_log_id":"../../admin","converted":1}`,
		`{"call_log_id":"..","converted":1}`,
		`{"call_log_id":".","converted":1}`,
		`{"call_log_id":"a/b","converted":1}`,
		`{"call_log_id":"%2e%2e","converted":1}`,
		`{"call_log_id":"a?b=c#d","converted":1}`,
		`{"call_log_id":"a b","converted":1}`,
		`{"call_log_id":"a\u00a0b","converted":1}`,
		`{"call_log_id":"a\u2028b","converted":1}`,
		`{"call_log_id":"a\u200bb","converted":1}`,
		`{"call_log_id":"","converted":1}`,
		`{"call_log_id":["..","a/b","%41","a?b"],"converted":1}`,
		`{"call_log_id":"` + strings.Repeat("é", 128) + `","converted":1}`,
		`{"call_log_id":"` + strings.Repeat("é", 129) + `","converted":1}`,
		`{"call_log_id":123,"converted":1}`,
		`{"call_log_id":null,"phone_number":"+15551234567","converted":1}`,
		`{"call_log_id":[],"converted":1}`,
		`{"call_log_id":["a",1],"converted":1}`,
		`{"call_log_id":[["a"]],"converted":1}`,
		`{"call_log_id":["a"],"phone_number":"+15551234567","converted":1}`,
		`{"call_log_id":"a","phone_number":"+15551234567","converted":1}`,
		`{"fields":{"call_log_id":"a","converted":true}}`,
		`{"fields":"converted","call_log_id":"a"}`,
		// Phones.
		`{"phone_number":"5551234567","converted":1}`,
		`{"phone_number":"15551234567","converted":1}`,
		`{"phone_number":"0044 20 7946 0958","converted":1}`,
		`{"phone_number":"020 7946 0958","converted":1}`,
		`{"phone_number":"+0123456789","converted":1}`,
		`{"phone_number":"++15551234567","converted":1}`,
		`{"phone_number":15551234567,"converted":1}`,
		`{"phone_number":"` + strings.Repeat("1", 65) + `","converted":1}`,
		// Tags.
		`{"call_log_id":"a","add":{"k":{"x":1}}}`,
		`{"call_log_id":"a","add":{"k":null}}`,
		`{"call_log_id":"a","add":{"":"v"}}`,
		`{"call_log_id":"a","add":{"bad key":"v"}}`,
		`{"call_log_id":"a","add":{"` + strings.Repeat("k", 64) + `":"` + strings.Repeat("v", 255) + `"}}`,
		`{"call_log_id":"a","add":{"` + strings.Repeat("k", 65) + `":"v"}}`,
		`{"call_log_id":"a","add":["k"]}`,
		`{"call_log_id":"a","add":"k"}`,
		`{"call_log_id":"a","add":{},"remove":[]}`,
		`{"call_log_id":"a","remove":[1]}`,
		`{"call_log_id":"a","remove":"a,b"}`,
		`{"call_log_id":"a","no_payout_reason":"CAMPAIGN_PRECONVERSION"}`,
		`{"call_log_id":"a","no_payout_reason":"Campaign-preconversion"}`,
		`{"call_log_id":"a","reason":"` + strings.Repeat("ü", 255) + `"}`,
		`{"call_log_id":"a","reason":"` + strings.Repeat("ü", 256) + `"}`,
		`{"call_log_id":"a","reason":7}`,
		`{"call_log_id":["a b","","ok","\u0000","` + strings.Repeat("x", 129) + `"],"converted":1}`,
		`{"call_log_id":"a","add":{"k":"v"},"fields":{"add":{"k":"v"}}}`,
		`{"call_log_id":"a","add":{"k":"v"},"fields":{"add":[{"k":"v"}]}}`,
		`{"call_log_id":"a","remove":["k"],"fields":{"remove":["k"]}}`,
		`{"phone_number":null,"converted":1}`,
		`{"phone_number":{},"converted":1}`,
		`{"phone_number":["+15551234567"],"converted":1}`,
		`{"call_log_id":"a","remove":null}`,
		`{"call_log_id":"a","remove":true}`,
		`{"call_log_id":"a","add":7}`,
		`{"call_log_id":"a","converted":null}`,
		`{"call_log_id":"a","converted":[true]}`,
		`{"call_log_id":"a","publisher_paid_out":null}`,
		`{"call_log_id":"a","publisher_paid_out":"1234.5001"}`,
		`{"call_log_id":"a","revenue_paid_out":1234.5}`,
		`{"call_log_id":"a","call_converted_at":{"t":1}}`,
		`{"call_log_id":"a","no_payout_reason":false}`,
		`{"call_log_id":"a","reason":{"x":"y"}}`,
		fuzzBatch(65, 0),
		fuzzBatch(120, 7),
		fuzzBatch(201, 0),
	}
}

// fuzzBatch is a batch of n ids of which every dup-th repeats an earlier one.
func fuzzBatch(n, dup int) string {
	var b strings.Builder
	b.WriteString(`{"converted":true,"call_log_id":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		id := i
		if dup > 0 && i%dup == dup-1 {
			id = i / 2
		}
		b.WriteString(`"id-` + strconv.Itoa(id) + `"`)
	}
	b.WriteString("]}")
	return b.String()
}

// fuzzTenKQuery is a query string of 10 000 parameters.
func fuzzTenKQuery() string {
	var b strings.Builder
	for i := 0; i < 10000; i++ {
		b.WriteString("p" + strconv.Itoa(i) + "=" + strconv.Itoa(i) + "&")
	}
	b.WriteString("call_log_id=a&converted=1")
	return b.String()
}

// fuzzQueries are query strings and forms, realistic and hostile.
func fuzzQueries() []string {
	var over, tags51 strings.Builder
	for i := 0; i < 255; i++ {
		over.WriteString("sub=1&")
	}
	over.WriteString("call_log_id=a")
	tags51.WriteString("call_log_id=a")
	for i := 0; i < 51; i++ {
		tags51.WriteString("&add[t" + strconv.Itoa(i) + "]=v")
	}
	return []string{
		"",
		"moja_auth_key=k&call_log_id=abc-123&converted=1&revenue_paid_out=25.50",
		"moja_auth_key=k&call_log_id=abc-123&revenue_paid_out=25.50",
		"moja_auth_key=k&call_log_id=abc-123&add[customer_type]=premium&remove=old_tag",
		"call_log_id=abc-123&reason=sale+made&converted=yes",
		"call_log_id=abc-123&fields[converted]=true&fields%5Breason%5D=sale&fields[disposition]=sale",
		"phone_number=(555)+123-4567&converted=1",
		"phone_number=%2B44+20+7946+0958&converted=1",
		"call_log_id=a&call_converted_at=1774605600123&no_payout_reason=condition_not_met",
		"call_log_id=a&call_converted_at=2026-03-27T12:00:00%2B02:00",
		"call_log_id=a&call_converted_at=2026-03-27T12:00:00+02:00",
		"call_log_id=a&reason=&call_converted_at=&no_payout_reason=",
		"call_log_id=a&converted=&revenue_paid_out=",
		"call_log_id=a&add[tier]=gold&fields[add][src]=crm&remove=old,older&remove[]=oldest&fields[remove][]=x",
		"call_log_id=a&remove=+a+,,b+,+",
		"call_log_id=a&add=x", "call_log_id=a&fields=x", "call_log_id=a&add[]=x", "call_log_id=a&add[a][b]=x",
		"call_log_id=a&add[k]=1&remove=k",
		"call_log_id=a&add[k]=&converted=1",
		"call_log_id=a&call_log_id=b&converted=1",
		"call_log_id=a&call_log_id=a&converted=1",
		"call_log_id[]=a&converted=1",
		"call_log_id=a&call_log_id[]=a&converted=1",
		"call_log_id=&converted=1",
		"call_log_id=a&phone_number=5551234567&converted=1",
		"fields[call_log_id]=a&converted=1",
		"fields[phone_number]=a&converted=1",
		"fields[]=1&fields[x=1&fields[a][b]=1&fields[moja_auth_key]=k&call_log_id=a&converted=1",
		"call_log_id=a&converted=1&reason=x&disposition=y",
		"call_log_id=a&converted=1&converted=0",
		"call_log_id=a&converted=1&fields[converted]=1",
		"=&&&=x&call_log_id=a&converted=1&&",
		"call_log_id=a&converted=1&sub1=x&sub1=y&moja_auth_key=k&moja%5Fauth%5Fkey=k2",
		// Escapes, NUL bytes, invalid UTF-8.
		"call_log_id=a%zz&converted=1",
		"call_log_id=a%&converted=1",
		"call_log_id=a%00&converted=1",
		"call_log_id=a&reason=a%00b",
		"call_log_id=%ff&converted=1",
		"call_log_id=a&reason=%c3%28",
		"call_log_id=a&%ff=1&converted=1",
		"call_log_id=a&converted=1\x00",
		"call_log_id=a;converted=1",
		// Ids with / .. % ? and spaces.
		"call_log_id=..%2F..%2Fadmin&converted=1",
		"call_log_id=..&converted=1",
		"call_log_id=a/b&converted=1",
		"call_log_id=%252e%252e&converted=1",
		"call_log_id=a%3Fb%3Dc%23d&converted=1",
		"call_log_id=a+b&converted=1",
		"call_log_id=a%20b&converted=1",
		"call_log_id=a%C2%A0b&converted=1",
		"call_log_id=" + strings.Repeat("%C3%A9", 128) + "&converted=1",
		"call_log_id=" + strings.Repeat("%C3%A9", 129) + "&converted=1",
		// Numbers.
		"call_log_id=a&revenue_paid_out=1e3",
		"call_log_id=a&revenue_paid_out=%EF%BC%92%EF%BC%95",
		"call_log_id=a&revenue_paid_out=99999999999999.9999",
		"call_log_id=a&revenue_paid_out=999999999999999",
		"call_log_id=a&revenue_paid_out=1000000.0001",
		"call_log_id=a&revenue_paid_out=-1",
		"call_log_id=a&revenue_paid_out=%2425",
		"call_log_id=a&call_converted_at=99999999999999999999",
		// Limits.
		fuzzTenKQuery(),
		over.String(),
		over.String() + "&converted=1",
		tags51.String(),
		strings.Repeat("&", 100000) + "call_log_id=a&converted=1",
		// Every field, valid and not.
		"call_log_id=a&publisher_paid_out=10&revenue_paid_out=25.50",
		"call_log_id=a&publisher_paid_out=1234.5001",
		"call_log_id=a&call_converted_at=2026-03-27T10:00:00",
		"call_log_id=a&call_converted_at=2026-03-27T10:00:00.5",
		"call_log_id=a&call_converted_at=2026-03-29T00:00:00Z",
		"call_log_id=a&call_converted_at=1774605600",
		"call_log_id=a&call_converted_at=17746056001",
		"call_log_id=a&converted=maybe&no_payout_reason=because",
		"call_log_id=a&no_payout_reason=Campaign+preconversion",
		"call_log_id=a&reason=" + strings.Repeat("x", 256),
		"call_log_id=a&reason=" + strings.Repeat("%C3%BC", 255),
		"call_log_id=a&add[k]=" + strings.Repeat("v", 256),
		"call_log_id=a&add[k]=1&add[k]=2&add[j]=%07",
		"call_log_id=a&add[" + strings.Repeat("k", 65) + "]=v",
		"call_log_id=a&remove=" + strings.Repeat("k,", 60),
		"phone_number=5551234567&converted=1",
		"phone_number=15551234567&converted=1",
		"phone_number=" + strings.Repeat("1", 65) + "&converted=1",
		"phone_number=%2B15551234567&phone_number=%2B15551234568&converted=1",
		"phone_number=%2B44+(0)20+7946+0958&converted=1",
		"phone_number=12345&converted=1",
		// JSON sent as a form.
		`{"call_log_id":"a","converted":true}`,
		` {"call_log_id":"a"} `,
		`{`,
	}
}

// ---------------------------------------------------------------------------
// Targets

// FuzzParseJSON parses a JSON POST with a query string on every endpoint.
func FuzzParseJSON(f *testing.F) {
	for _, b := range fuzzReleaseNoteBodies {
		f.Add([]byte(b), "moja_auth_key=k")
		f.Add([]byte(b), "")
	}
	for _, b := range fuzzJSONBodies() {
		f.Add([]byte(b), "")
	}
	f.Add([]byte(`{"converted":false}`), "call_log_id=abc-123")
	f.Add([]byte(`{"call_log_id":"b","converted":true}`), "call_log_id=a")
	f.Add([]byte(`{"call_log_id":["a"],"converted":true}`), "call_log_id=a")
	f.Add([]byte(`{"call_log_id":"a","revenue_paid_out":25.50}`), "call_log_id=a&revenue_paid_out=25.50")
	f.Add([]byte(`{"call_log_id":"a","revenue_paid_out":25.50}`), "revenue_paid_out=25.5")
	f.Add([]byte(`{"call_log_id":"a","reason":null}`), "reason=")
	f.Add([]byte(`{"call_log_id":"a","add":{"k":"v"}}`), "add[k]=w")
	f.Add([]byte(" \n"), "call_log_id=a&converted=0")
	f.Add([]byte(`{"call_log_id":"a","converted":1}`), "call_log_id=a%zz")
	f.Add([]byte(`{"phone_number":"+15551234567","converted":1}`), "phone_number=%2B15551234567")
	f.Add([]byte(`{"phone_number":"+15551234567","converted":1}`), "phone_number=%2B15551234568")
	f.Add([]byte(`{"phone_number":15551234567,"converted":1}`), "phone_number=15551234567")
	f.Add([]byte(`{"call_log_id":["a"],"converted":1}`), "phone_number=%2B15551234567")
	f.Add([]byte(`{"converted":1}`), "call_log_id=a&call_log_id=b")
	f.Add([]byte(`{"call_log_id":"a","converted":1}`), fuzzTenKQuery())

	f.Fuzz(func(t *testing.T, body []byte, query string) {
		s := string(body)
		// JSON-level differential: checkJSON and readJSON's duplicate
		// keys against encoding/json.
		if utf8.ValidString(s) && !jsonBlank(s) {
			want := refJSONCheck([]byte(s), maxDepth)
			got := checkJSON(s)
			if got == nil {
				var in input
				got = fuzzLenient.readJSON(&in, s)
			}
			if (got == nil) != (want == "") {
				t.Fatalf("checkJSON+readJSON(%q) = %v, encoding/json says %q", s, got, want)
			}
		}
		for _, p := range [...]*Parser{fuzzLenient, fuzzStrict, fuzzTight, fuzzWide} {
			checkParseAll(t, p, query, body, BodyJSON)
		}
		// docs/partner-api.md#request-format: a body that is not a JSON object is a 400, whatever
		// the query string carries; JSON whitespace alone is no body.
		if !jsonBlank(s) {
			if req, _ := fuzzLenient.Parse(EndpointUpdateFields, query, body, BodyJSON); req != nil {
				if !utf8.ValidString(s) {
					t.Fatalf("accepted a body that is not valid UTF-8: %q", s)
				}
				if why := refJSONCheck(body, maxDepth); why != "" {
					t.Fatalf("accepted body %q: %s", s, why)
				}
			}
		}
		checkStrictAgrees(t, query, body, BodyJSON)
		if query == "" {
			req, _ := fuzzLenient.Parse(EndpointUpdateFields, "", body, BodyJSON)
			if req != nil {
				checkJSONSemantics(t, s, req)
			}
		}
	})
}

// FuzzParseQuery parses a GET query string, and a form POST, on every
// endpoint.
func FuzzParseQuery(f *testing.F) {
	qs := fuzzQueries()
	for _, q := range qs {
		f.Add(q, "")
		f.Add("", q)
	}
	f.Add("moja_auth_key=k", "call_log_id=abc-123&reason=sale+made&converted=yes")
	f.Add("call_log_id=a", "call_log_id=a&converted=1")
	f.Add("call_log_id=a", "call_log_id=b&converted=1")
	f.Add("reason=x", "call_log_id=a&disposition=y")
	f.Add("add[k]=1", "call_log_id=a&remove=k")
	f.Add("call_log_id=a&converted=1", `{"x":1}`)

	f.Fuzz(func(t *testing.T, query, form string) {
		for _, p := range [...]*Parser{fuzzLenient, fuzzStrict, fuzzTight, fuzzWide} {
			checkParseAll(t, p, query, nil, BodyNone)
			checkParseAll(t, p, query, []byte(form), BodyForm)
		}
		checkStrictAgrees(t, query, nil, BodyNone)
		checkStrictAgrees(t, query, []byte(form), BodyForm)
		checkFormIsQuery(t, form)
		checkSourcesCommute(t, query, form)
		if req, _ := fuzzLenient.Parse(EndpointUpdateFields, query, nil, BodyNone); req != nil {
			checkQuerySemantics(t, query, req)
		}
	})
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// FuzzNormalizePhone checks docs/partner-api.md#identifying-calls phone normalization.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{
		"+1 (555) 123-4567", "+44 (0)20 7946 0958", "+44(0)(0)20 7946 0958", "(+44) (0)20 7946 0958", "(555) 123-4567", "555.123.4567", "15551234567", "5551234567", "+15551234567",
		"0044 20 7946 0958", "020 7946 0958", "+44 20 7946 0958", "00 1 555 123 4567", "0", "00", "000", "+",
		"++15551234567", "1+5551234567", "+0123456789", "0000000000", "+123456", "+1234567", "+123456789012345",
		"+1234567890123456", "123456", "12345678901234567890", "+１５５５１２３４５６７", "+१५५५१२३४५६७",
		"555-CALL-NOW", "+1\x00555", "+1\t5551234567", "+1\u00a05551234567", "\xff", "tel:+15551234567",
		strings.Repeat("1", 64), strings.Repeat("1", 65), strings.Repeat(" ", 64) + "1", "",
	} {
		for _, cc := range []string{"1", "44", "358", "", "0", "12a", "9999"} {
			f.Add(s, cc)
		}
	}
	f.Fuzz(func(t *testing.T, s, cc string) {
		out, msg := NormalizePhone(s, cc)
		if (out == "") == (msg == "") {
			t.Fatalf("NormalizePhone(%q, %q) = %q, %q: want exactly one", s, cc, out, msg)
		}
		if out == "" {
			return
		}
		if strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune("+0123456789 -.()", r) }) {
			t.Fatalf("NormalizePhone(%q, %q) = %q: accepted a character outside digits, +, and separators", s, cc, out)
		}
		if !validCountryCode(cc) {
			return // refused by the Caddyfile (handler Validate)
		}
		if !e164.MatchString(out) {
			t.Fatalf("NormalizePhone(%q, %q) = %q: not E.164 (+ and 7–15 digits)", s, cc, out)
		}
		d := digitsOf(s)
		if strings.HasPrefix(strings.TrimSpace(s), "+") {
			// "+44 (0)20 …": the trunk prefix in parentheses is dropped.
			d = digitsOf(strings.Replace(s, "(0)", "", 1))
		}
		if strings.Contains(s, "+") {
			if out[1:] != d {
				t.Fatalf("NormalizePhone(%q, %q) = %q: an international number must keep its digits %s", s, cc, out, d)
			}
		} else if !strings.HasSuffix(out[1:], strings.TrimPrefix(strings.TrimPrefix(d, "0"), "0")) {
			t.Fatalf("NormalizePhone(%q, %q) = %q: lost digits of %s", s, cc, out, d)
		}
		for _, c := range []string{cc, ""} {
			if again, msg := NormalizePhone(out, c); again != out {
				t.Fatalf("NormalizePhone(%q, %q) = %q, but NormalizePhone(%q, %q) = %q, %q: not idempotent", s, cc, out, out, c, again, msg)
			}
		}
	})
}

var amountSyntax = regexp.MustCompile(`^(0|[1-9][0-9]{0,13})(\.[0-9]{1,4})?$`)

// FuzzParseAmount checks docs/partner-api.md#fields amounts and the round trip through
// Amount.String.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{
		"25.50", "25.5", "25", "0", "0.0", "0.0000", "0.0001", "1000000", "1000000.0000", "1000000.0001",
		"99999999999999.9999", "100000000000000", "999999999999999999999", "9223372036854775807", "922337203685477.5807",
		"00", "01", "00.5", ".5", "5.", ".", "", "-1", "-0", "+1", "1e3", "1E3", "2.5e1", "1,000", "1_000", "$25", "25$",
		" 25", "25 ", "1.00001", "1.2.3", "٢٥", "２５", "1\x00", "\xff", "NaN", "Inf", "0x10", "1.0000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, msg := ParseAmount(s)
		if msg != "" {
			if a != 0 {
				t.Fatalf("ParseAmount(%q) refused (%s) but returned %d", s, msg, a)
			}
			if amountSyntax.MatchString(s) {
				t.Fatalf("ParseAmount(%q) refused a valid amount: %s", s, msg)
			}
			return
		}
		if !amountSyntax.MatchString(s) {
			t.Fatalf("ParseAmount(%q) = %d: accepted an amount outside docs/partner-api.md#fields syntax", s, a)
		}
		if a < 0 {
			t.Fatalf("ParseAmount(%q) = %d: negative", s, a)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("big.Rat cannot read %q", s)
		}
		r.Mul(r, big.NewRat(10000, 1))
		if !r.IsInt() || !r.Num().IsInt64() || r.Num().Int64() != int64(a) {
			t.Fatalf("ParseAmount(%q) = %d, want %s", s, a, r.RatString())
		}
		str := a.String()
		b, msg := ParseAmount(str)
		if msg != "" || b != a {
			t.Fatalf("ParseAmount(%q) = %d; String() = %q re-parses to %d, %q", s, a, str, b, msg)
		}
		if strings.Contains(str, ".") && strings.HasSuffix(str, "0") {
			t.Fatalf("Amount(%d).String() = %q has trailing zeros", a, str)
		}
	})
}

// FuzzAppendString checks the JSON string writer of every response and
// PATCH body.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "abc-123", `say "hi" <b>&amp;</b>`, "a\\b", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\u2028\u2029", "\ufffd",
		"\xff", "\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x80", "é", "😀", "a\xffb\xfe", "</script>",
		"\u0085\u00a0", strings.Repeat("\xff", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString([]byte("x"), s)
		if out[0] != 'x' {
			t.Fatalf("appendString overwrote dst")
		}
		out = out[1:]
		if !json.Valid(out) {
			t.Fatalf("appendString(%q) = %s: not valid JSON", s, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("appendString(%q) = %q: not valid UTF-8", s, out)
		}
		for _, bad := range []string{"<", ">", "&", "\u2028", "\u2029"} {
			if bytes.Contains(out, []byte(bad)) {
				t.Fatalf("appendString(%q) = %s: holds %q unescaped", s, out, bad)
			}
		}
		for _, c := range out {
			if c < 0x20 {
				t.Fatalf("appendString(%q) = %q: holds a raw control character", s, out)
			}
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("appendString(%q) = %s: %v", s, out, err)
		}
		if want := string([]rune(s)); back != want {
			t.Fatalf("appendString(%q) decodes to %q, want %q", s, back, want)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("appendString(%q) decodes to %q", s, back)
		}
	})
}

// FuzzQueryParam checks the auth key lookup against a plain reading of the
// query string, for parameter names a Caddyfile would configure.
func FuzzQueryParam(f *testing.F) {
	for _, q := range []string{
		"moja_auth_key=k", "a=1&moja_auth_key=k&moja_auth_key=k2", "moja%5Fauth%5Fkey=k", "moja_auth_key=a%2Bb+c",
		"moja_auth_key=%zz&moja_auth_key=k", "moja%zz=1&moja_auth_key=k", "moja_auth_key", "moja_auth_key=", "&&moja_auth_key=k&",
		"moja_auth_key=k;x=1", "x=1;moja_auth_key=k", "moja+auth_key=k", "%6doja_auth_key=k=v", "moja_auth_key=\x00", "",
		fuzzTenKQuery(),
	} {
		f.Add(q, "moja_auth_key")
		f.Add(q, "key")
	}
	f.Add("=secret", "")
	f.Add("%zz=secret", "")
	f.Add("a+b=1", "a b")
	f.Add("%41=1", "%41")
	f.Fuzz(func(t *testing.T, raw, name string) {
		got := QueryParam(raw, name)
		if name == "" || url.QueryEscape(name) != name {
			return // not a name a Caddyfile configures; only must not panic
		}
		if want := refQueryParam(raw, name); got != want {
			t.Fatalf("QueryParam(%q, %q) = %q, want %q", raw, name, got, want)
		}
		// The parser must skip the same parameter QueryParam reads.
		p := *fuzzLenient
		p.AuthParam = name
		var in input
		if p.readQuery(&in, raw, "query string") == nil && got != "" {
			for _, n := range in.ignored {
				if n == name {
					t.Fatalf("QueryParam(%q, %q) = %q but the parser lists it as ignored", raw, name, got)
				}
			}
		}
	})
}

// ---------------------------------------------------------------------------
// Invariants

// checkParseAll parses on every endpoint, and as call-completed, and checks
// each result; update-fields must accept what the narrower endpoints do.
func checkParseAll(t *testing.T, p *Parser, query string, body []byte, kind BodyKind) {
	t.Helper()
	var reqs [len(fuzzEndpoints)]*Request
	for i, ep := range fuzzEndpoints {
		req, err := p.Parse(ep, query, body, kind)
		checkParsed(t, p, ep, req, err)
		reqs[i] = req
	}
	fields := reqs[2]
	for i, ep := range fuzzEndpoints[:2] {
		if reqs[i] != nil && !reflect.DeepEqual(reqs[i], fields) {
			t.Fatalf("%s accepted %+v but update-fields gave %+v", ep.Segment(), reqs[i], fields)
		}
	}
	if fields != nil {
		set := fields.Update.Set
		if onlyRevenue := set == fieldSet(1)<<fieldRevenue; onlyRevenue != (reqs[0] != nil) {
			t.Fatalf("update-fields accepted %+v; update-revenue accepted: %v", fields, reqs[0] != nil)
		}
		if onlyTags := set&^(fieldSet(1)<<fieldAdd|fieldSet(1)<<fieldRemove) == 0; onlyTags != (reqs[1] != nil) {
			t.Fatalf("update-fields accepted %+v; update-tags accepted: %v", fields, reqs[1] != nil)
		}
	}

	ids, err := p.ParseCompleted(query, body, kind)
	if (ids == nil) == (err == nil) {
		t.Fatalf("ParseCompleted returned ids %q and error %v: want exactly one", ids, err)
	}
	if err != nil {
		checkError(t, err)
		return
	}
	checkIDs(t, p, ids)
	checkJSONOutput(t, "AppendScheduled", AppendScheduled(nil, ids))
}

func checkParsed(t *testing.T, p *Parser, ep Endpoint, req *Request, err *Error) {
	t.Helper()
	if (req == nil) == (err == nil) {
		t.Fatalf("%s: Parse returned request %+v and error %v: want exactly one", ep.Segment(), req, err)
	}
	if err != nil {
		checkError(t, err)
		return
	}
	checkRequest(t, p, ep, req)
	checkPatch(t, p, req)
	checkResponse(t, req)
}

func checkError(t *testing.T, e *Error) {
	t.Helper()
	if e.Status != 400 || e.Code != CodeInvalidRequest || e.Message == "" {
		t.Fatalf("error %+v: want status 400, code invalid_request and a message", e)
	}
	seen := map[string]bool{}
	for _, f := range e.Fields {
		if f.Message == "" {
			t.Fatalf("error %+v: field %q has no message", e, f.Field)
		}
		if seen[f.Field] {
			t.Fatalf("error %+v: field %q listed twice", e, f.Field)
		}
		seen[f.Field] = true
	}
	out := AppendError(nil, e)
	checkJSONOutput(t, "AppendError", out)
	var v struct {
		Error struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("AppendError: %s: %v", out, err)
	}
	if v.Error.Code != e.Code || v.Error.Message != string([]rune(e.Message)) {
		t.Fatalf("AppendError(%+v) = %s", e, out)
	}
	for _, f := range e.Fields {
		if _, ok := v.Error.Fields[string([]rune(f.Field))]; !ok {
			t.Fatalf("AppendError(%+v) = %s: lost field %q", e, out, f.Field)
		}
	}
}

// specCallLogID is docs/partner-api.md#identifying-calls: 1 to 128 printable characters, no whitespace.
func specCallLogID(id string) bool {
	if !utf8.ValidString(id) {
		return false
	}
	if n := utf8.RuneCountInString(id); n < 1 || n > 128 {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func checkIDs(t *testing.T, p *Parser, ids []string) {
	t.Helper()
	if len(ids) < 1 || len(ids) > p.MaxBatch {
		t.Fatalf("%d ids %q: want 1 to %d", len(ids), ids, p.MaxBatch)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("ids %q: %q given twice", ids, id)
		}
		seen[id] = true
		if !specCallLogID(id) {
			t.Fatalf("accepted call_log_id %q: not 1–128 printable characters without whitespace", id)
		}
		// docs/operations.md#updating-a-call: the id is one path segment of the call store.
		esc := EscapeCallLogID(id)
		if strings.ContainsAny(esc, "/?#") || esc == "." || esc == ".." {
			t.Fatalf("EscapeCallLogID(%q) = %q: leaves its path segment", id, esc)
		}
		if back, err := url.PathUnescape(esc); err != nil || back != id {
			t.Fatalf("EscapeCallLogID(%q) = %q unescapes to %q, %v", id, esc, back, err)
		}
	}
}

var tagKeySyntax = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

func specText(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 255 {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func checkRequest(t *testing.T, p *Parser, ep Endpoint, req *Request) {
	t.Helper()
	switch {
	case req.PhoneNumber != "":
		if len(req.CallLogIDs) != 0 || req.Batch {
			t.Fatalf("request %+v has a phone number and ids", req)
		}
		if !e164.MatchString(req.PhoneNumber) {
			t.Fatalf("phone number %q is not E.164", req.PhoneNumber)
		}
	default:
		checkIDs(t, p, req.CallLogIDs)
		if !req.Batch && len(req.CallLogIDs) != 1 {
			t.Fatalf("request %+v: several ids without a batch", req)
		}
	}
	u := &req.Update
	accepts := ep.accepts()
	switch {
	case u.Set == 0:
		t.Fatalf("request %+v updates nothing (docs/partner-api.md#request-format)", req)
	case u.Set&^accepts != 0:
		t.Fatalf("%s accepted fields %b it does not take", ep.Segment(), u.Set&^accepts)
	case u.Cleared&^u.Set != 0:
		t.Fatalf("request %+v clears fields it does not set", req)
	case u.Cleared&^(fieldSet(1)<<fieldConvertedAt|fieldSet(1)<<fieldReason|fieldSet(1)<<fieldNoPayoutReason) != 0:
		t.Fatalf("request %+v clears a field that cannot be cleared", req)
	case ep == EndpointUpdateRevenue && !u.Set.has(fieldRevenue):
		t.Fatalf("update-revenue accepted %+v without revenue_paid_out", req)
	case ep == EndpointUpdateTags && !u.Set.has(fieldAdd) && !u.Set.has(fieldRemove):
		t.Fatalf("update-tags accepted %+v without add or remove", req)
	}
	set := func(f field) bool { return u.Set.has(f) && !u.Cleared.has(f) }
	for _, m := range []struct {
		f field
		v string
	}{{fieldRevenue, u.Revenue}, {fieldPublisher, u.Publisher}} {
		if !set(m.f) {
			continue
		}
		if a, msg := ParseAmount(m.v); msg != "" || a > p.MaxAmount {
			t.Fatalf("accepted %s %q: %s (max %s)", m.f, m.v, msg, p.MaxAmount)
		}
	}
	if set(fieldConvertedAt) {
		if u.ConvertedAt.Location() != time.UTC || u.ConvertedAt.Sub(fuzzNow) > 24*time.Hour {
			t.Fatalf("accepted call_converted_at %v (now %v)", u.ConvertedAt, fuzzNow)
		}
	}
	if set(fieldReason) && !specText(u.Reason) {
		t.Fatalf("accepted reason %q", u.Reason)
	}
	if set(fieldNoPayoutReason) && !slices.Contains(noPayoutReasons[:], u.NoPayoutReason) {
		t.Fatalf("accepted no_payout_reason %q", u.NoPayoutReason)
	}
	if u.Set.has(fieldAdd) != (len(u.TagsAdd) > 0) || u.Set.has(fieldRemove) != (len(u.TagsRemove) > 0) {
		t.Fatalf("request %+v: tags do not match Set", req)
	}
	if len(u.TagsAdd) > p.MaxTags || len(u.TagsRemove) > p.MaxTags {
		t.Fatalf("request adds %d and removes %d tags: at most %d", len(u.TagsAdd), len(u.TagsRemove), p.MaxTags)
	}
	keys := map[string]bool{}
	for _, tag := range u.TagsAdd {
		if !tagKeySyntax.MatchString(tag.Key) || !specText(tag.Value) || keys[tag.Key] {
			t.Fatalf("accepted tag %q=%q (tags %q)", tag.Key, tag.Value, u.TagsAdd)
		}
		keys[tag.Key] = true
	}
	removed := map[string]bool{}
	for _, k := range u.TagsRemove {
		if !tagKeySyntax.MatchString(k) || keys[k] || removed[k] {
			t.Fatalf("accepted tag removal %q (adds %q, removes %q)", k, u.TagsAdd, u.TagsRemove)
		}
		removed[k] = true
	}
	ignored := map[string]bool{}
	for _, n := range req.Ignored {
		if ignored[n] {
			t.Fatalf("ignored %q lists %q twice", req.Ignored, n)
		}
		ignored[n] = true
	}
	if p.Strict && len(req.Ignored) > 0 {
		t.Fatalf("strict mode accepted with ignored %q", req.Ignored)
	}
}

// checkPatch checks the PATCH body of docs/operations.md#updating-a-call.
func checkPatch(t *testing.T, p *Parser, req *Request) {
	t.Helper()
	u := &req.Update
	out := u.AppendPatch(nil)
	checkJSONOutput(t, "AppendPatch", out)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("AppendPatch = %s: %v", out, err)
	}
	want := 0
	for f := field(0); f < fieldAdd; f++ {
		if u.Set.has(f) {
			want++
			if _, ok := m[f.String()]; !ok {
				t.Fatalf("AppendPatch = %s: %s missing", out, f)
			}
		}
	}
	if len(u.TagsAdd)+len(u.TagsRemove) > 0 {
		want++
	}
	if len(m) != want {
		t.Fatalf("AppendPatch = %s: want %d keys for Set %b", out, want, u.Set)
	}
	for f := fieldConvertedAt; f < fieldAdd; f++ {
		if u.Cleared.has(f) && string(m[f.String()]) != "null" {
			t.Fatalf("AppendPatch = %s: cleared %s is not null", out, f)
		}
	}
	if u.Set.has(fieldConvertedAt) && !u.Cleared.has(fieldConvertedAt) {
		var s string
		if err := json.Unmarshal(m["call_converted_at"], &s); err != nil {
			t.Fatalf("AppendPatch = %s: %v", out, err)
		}
		at, err := time.Parse(time.RFC3339, s)
		if err != nil || !strings.HasSuffix(s, "Z") || !at.Equal(u.ConvertedAt) {
			t.Fatalf("AppendPatch = %s: call_converted_at %q is not RFC 3339 in UTC with Z for %v (%v)", out, s, u.ConvertedAt, err)
		}
	}
	for _, f := range []field{fieldRevenue, fieldPublisher} {
		if u.Set.has(f) {
			raw := string(m[f.String()])
			if v := map[field]string{fieldRevenue: u.Revenue, fieldPublisher: u.Publisher}[f]; raw != v {
				t.Fatalf("AppendPatch = %s: %s is %s, want the digits as received %q", out, f, raw, v)
			}
		}
	}
	for f, v := range map[field]string{fieldReason: u.Reason, fieldNoPayoutReason: u.NoPayoutReason} {
		if u.Set.has(f) && !u.Cleared.has(f) {
			var s string
			if err := json.Unmarshal(m[f.String()], &s); err != nil || s != v {
				t.Fatalf("AppendPatch = %s: %s decodes to %q, want %q (%v)", out, f, s, v, err)
			}
		}
	}
	if raw, ok := m["tags"]; ok {
		var tags struct {
			Add    map[string]string `json:"add"`
			Remove []string          `json:"remove"`
		}
		if err := json.Unmarshal(raw, &tags); err != nil {
			t.Fatalf("AppendPatch = %s: %v", out, err)
		}
		if len(tags.Add) != len(u.TagsAdd) || !slices.Equal(tags.Remove, u.TagsRemove) {
			t.Fatalf("AppendPatch = %s: tags differ from %q %q", out, u.TagsAdd, u.TagsRemove)
		}
		for _, tag := range u.TagsAdd {
			if tags.Add[tag.Key] != tag.Value {
				t.Fatalf("AppendPatch = %s: tag %q is %q, want %q", out, tag.Key, tags.Add[tag.Key], tag.Value)
			}
		}
	}
}

// checkResponse writes docs/partner-api.md#responses body for the request's calls with
// every outcome class and checks it.
func checkResponse(t *testing.T, req *Request) {
	t.Helper()
	ids := req.CallLogIDs
	if len(ids) == 0 {
		ids = []string{req.PhoneNumber}
	}
	for _, shift := range []int{0, 1, 3} {
		res := &Result{Ignored: req.Ignored}
		failed := 0
		for i, id := range ids {
			c := Class((i + shift) % int(QueueUnavailable+1))
			if c == Live {
				c = Queued
			}
			if c.Failed() {
				failed++
			}
			res.Calls = append(res.Calls, CallResult{CallLogID: id, Outcome: Outcome{Class: c, Message: "call " + id + " <" + c.Code() + ">"}})
		}
		out, status := AppendResponse(nil, res)
		checkJSONOutput(t, "AppendResponse", out)
		var v struct {
			IDs     []string `json:"call_log_ids"`
			Failed  []string `json:"failed_call_log_ids"`
			Queued  []string `json:"queued_call_log_ids"`
			Errors  map[string]struct{ Code, Message string }
			Ignored []string `json:"ignored"`
		}
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("AppendResponse = %s: %v", out, err)
		}
		if v.IDs == nil || v.Failed == nil || len(v.IDs)+len(v.Failed) != len(ids) || len(v.Failed) != failed || len(v.Errors) != failed {
			t.Fatalf("AppendResponse(%+v) = %s", res, out)
		}
		if len(v.Ignored) != len(req.Ignored) {
			t.Fatalf("AppendResponse(%+v) = %s: ignored differs", res, out)
		}
		switch {
		case failed == 0 && len(v.Queued) > 0 && status != 202,
			failed == 0 && len(v.Queued) == 0 && status != 200,
			failed > 0 && failed < len(ids) && status != 200,
			failed == len(ids) && status < 400:
			t.Fatalf("AppendResponse(%+v) status %d", res, status)
		}
	}
}

// checkStrictAgrees: strict mode accepts exactly what lenient mode accepts
// with nothing ignored, and the same way (docs/partner-api.md#unknown-parameters).
func checkStrictAgrees(t *testing.T, query string, body []byte, kind BodyKind) {
	t.Helper()
	for _, ep := range fuzzEndpoints {
		lenient, _ := fuzzLenient.Parse(ep, query, body, kind)
		strict, _ := fuzzStrict.Parse(ep, query, body, kind)
		want := lenient != nil && len(lenient.Ignored) == 0
		if (strict != nil) != want {
			t.Fatalf("%s: strict accepted %v; lenient accepted %+v", ep.Segment(), strict != nil, lenient)
		}
		if strict != nil && !reflect.DeepEqual(strict, lenient) {
			t.Fatalf("%s: strict gave %+v, lenient %+v", ep.Segment(), strict, lenient)
		}
	}
}

// checkFormIsQuery: a form body reads like a query string (docs/partner-api.md#request-format).
func checkFormIsQuery(t *testing.T, form string) {
	t.Helper()
	if tr := strings.TrimSpace(form); strings.HasPrefix(tr, "{") && strings.HasSuffix(tr, "}") {
		return
	}
	for _, ep := range fuzzEndpoints {
		a, errA := fuzzLenient.Parse(ep, "", []byte(form), BodyForm)
		b, errB := fuzzLenient.Parse(ep, form, nil, BodyNone)
		if !reflect.DeepEqual(a, b) || errFieldNames(errA) != errFieldNames(errB) {
			t.Fatalf("%s: form gave %+v, %v; the same as a query string %+v, %v", ep.Segment(), a, errA, b, errB)
		}
	}
}

// checkSourcesCommute: a query string and a form carry the same weight;
// swapping them changes no outcome.
func checkSourcesCommute(t *testing.T, query, form string) {
	t.Helper()
	for _, s := range []string{query, form} {
		if tr := strings.TrimSpace(s); strings.HasPrefix(tr, "{") && strings.HasSuffix(tr, "}") {
			return
		}
	}
	for _, ep := range fuzzEndpoints {
		a, _ := fuzzLenient.Parse(ep, query, []byte(form), BodyForm)
		b, _ := fuzzLenient.Parse(ep, form, []byte(query), BodyForm)
		if (a == nil) != (b == nil) {
			t.Fatalf("%s: query+form accepted %v, swapped accepted %v", ep.Segment(), a != nil, b != nil)
		}
		if a != nil {
			normalize(a)
			normalize(b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: query+form gave %+v, swapped %+v", ep.Segment(), a, b)
			}
		}
	}
}

func normalize(r *Request) {
	slices.Sort(r.Ignored)
	slices.SortFunc(r.Update.TagsAdd, func(a, b Tag) int { return strings.Compare(a.Key, b.Key) })
	slices.Sort(r.Update.TagsRemove)
}

func errFieldNames(e *Error) string {
	if e == nil {
		return "<nil>"
	}
	var names []string
	for _, f := range e.Fields {
		names = append(names, f.Field)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// checkJSONSemantics compares what the parser read from a JSON body with
// what encoding/json reads from it.
func checkJSONSemantics(t *testing.T, body string, req *Request) {
	t.Helper()
	if jsonBlank(body) {
		return
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
	}
	fields, _ := m["fields"].(map[string]any)
	switch id := m["call_log_id"].(type) {
	case string:
		if !slices.Equal(req.CallLogIDs, []string{id}) || req.Batch {
			t.Fatalf("call_log_id %q read as %q", id, req.CallLogIDs)
		}
	case []any:
		var want []string
		for _, el := range id {
			if s := el.(string); !slices.Contains(want, s) {
				want = append(want, s)
			}
		}
		if !slices.Equal(req.CallLogIDs, want) || !req.Batch {
			t.Fatalf("call_log_id %q read as %q", want, req.CallLogIDs)
		}
	case nil:
		pn, _ := m["phone_number"].(string)
		if want, _ := NormalizePhone(pn, fuzzLenient.DefaultCountryCode); req.PhoneNumber != want {
			t.Fatalf("phone_number %q read as %q, want %q", pn, req.PhoneNumber, want)
		}
	}
	u := &req.Update
	if u.Set.has(fieldReason) && !u.Cleared.has(fieldReason) {
		for _, src := range []map[string]any{m, fields} {
			for _, name := range []string{"reason", "disposition"} {
				if s, ok := src[name].(string); ok && s != u.Reason {
					t.Fatalf("%s %q read as %q", name, s, u.Reason)
				}
			}
		}
	}
	wantAdd := map[string]string{}
	var wantRemove []string
	for _, src := range []map[string]any{m, fields} {
		var objs []any
		switch a := src["add"].(type) {
		case map[string]any:
			objs = []any{a}
		case []any:
			objs = a
		}
		for _, o := range objs {
			for k, v := range o.(map[string]any) {
				switch v := v.(type) {
				case string:
					wantAdd[k] = v
				case json.Number:
					wantAdd[k] = v.String()
				case bool:
					wantAdd[k] = strconv.FormatBool(v)
				}
			}
		}
		switch r := src["remove"].(type) {
		case string:
			wantRemove = append(wantRemove, r)
		case []any:
			for _, k := range r {
				wantRemove = append(wantRemove, k.(string))
			}
		}
	}
	checkTags(t, u, wantAdd, wantRemove)
	var wantIgnored []string
	for k := range m {
		if kind, _ := classify(k, fuzzLenient.AuthParam); kind == paramUnknown {
			wantIgnored = append(wantIgnored, k)
		}
	}
	for k := range fields {
		if kind, _ := classify(k, fuzzLenient.AuthParam); kind == paramUnknown || kind == paramAuth || kind == paramFields {
			wantIgnored = append(wantIgnored, "fields."+k)
		}
	}
	slices.Sort(wantIgnored)
	gotIgnored := slices.Clone(req.Ignored)
	slices.Sort(gotIgnored)
	if !slices.Equal(wantIgnored, gotIgnored) {
		t.Fatalf("ignored %q, want %q", req.Ignored, wantIgnored)
	}
}

// checkQuerySemantics compares what the parser read from a query string
// with what net/url reads from it.
func checkQuerySemantics(t *testing.T, query string, req *Request) {
	t.Helper()
	vals, err := url.ParseQuery(query)
	if err != nil {
		return // net/url refuses ';'; the parser does not split on it
	}
	ids := append(slices.Clone(vals["call_log_id"]), vals["call_log_id[]"]...)
	switch len(ids) {
	case 0:
		if want, _ := NormalizePhone(vals.Get("phone_number"), fuzzLenient.DefaultCountryCode); req.PhoneNumber != want {
			t.Fatalf("phone_number %q read as %q", vals["phone_number"], req.PhoneNumber)
		}
	case 1:
		if !slices.Equal(req.CallLogIDs, ids) {
			t.Fatalf("call_log_id %q read as %q", ids, req.CallLogIDs)
		}
	default:
		t.Fatalf("accepted %d call_log_id in a query string", len(ids))
	}
	u := &req.Update
	if u.Set.has(fieldReason) && !u.Cleared.has(fieldReason) {
		for _, name := range []string{"reason", "disposition", "fields[reason]", "fields[disposition]"} {
			for _, v := range vals[name] {
				if v != u.Reason {
					t.Fatalf("%s %q read as %q", name, v, u.Reason)
				}
			}
		}
	}
	wantAdd := map[string]string{}
	var wantRemove []string
	for name, vs := range vals {
		for _, prefix := range []string{"add[", "fields[add]["} {
			if k, ok := strings.CutPrefix(name, prefix); ok && strings.HasSuffix(k, "]") {
				wantAdd[strings.TrimSuffix(k, "]")] = vs[0]
			}
		}
		switch name {
		case "remove", "remove[]", "fields[remove]", "fields[remove][]":
			for _, v := range vs {
				for _, k := range strings.Split(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						wantRemove = append(wantRemove, k)
					}
				}
			}
		}
	}
	checkTags(t, u, wantAdd, wantRemove)
}

// ---------------------------------------------------------------------------
// References

// jsonBlank reports a body of JSON whitespace only, which the parser reads
// as no body.
func jsonBlank(s string) bool { return strings.Trim(s, " \t\r\n") == "" }

// refJSONCheck is docs/partner-api.md#request-format and partner-api#limits read with encoding/json: "" for a
// valid JSON object nested at most maxDepth deep, without a key given twice
// in one object; else why not.
func refJSONCheck(data []byte, maxDepth int) string {
	if !json.Valid(data) {
		return "not valid JSON"
	}
	type frame struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			return err.Error()
		}
		if first && tok != json.Delim('{') {
			return "not an object"
		}
		first = false
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{', '[':
				if top != nil && top.object {
					top.wantKey = true
				}
				stack = append(stack, &frame{object: tok == '{', wantKey: true, keys: map[string]bool{}})
				if len(stack) > maxDepth {
					return "too deep"
				}
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top.object && top.wantKey {
				if top.keys[tok] {
					return "key " + strconv.Quote(tok) + " given twice"
				}
				top.keys[tok] = true
				top.wantKey = false
			} else if top.object {
				top.wantKey = true
			}
		default:
			if top.object {
				top.wantKey = true
			}
		}
	}
}

// checkJSONOutput checks a body the edge writes: valid JSON, an object,
// no key twice in one object.
func checkJSONOutput(t *testing.T, what string, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("%s wrote invalid JSON: %s", what, out)
	}
	if why := refJSONCheck(out, 1<<30); why != "" {
		t.Fatalf("%s wrote %s: %s", what, out, why)
	}
}

// refQueryParam reads the first value of name the way the parser reads
// every parameter: split on &, then unescape.
func refQueryParam(raw, name string) string {
	for _, pair := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err != nil || uk != name {
			continue
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return ""
		}
		return uv
	}
	return ""
}

// validCountryCode is what the handler's Validate lets through: none, or 1
// to 3 digits not starting with 0.
func validCountryCode(cc string) bool {
	return cc == "" || len(cc) <= 3 && strings.Trim(cc, "0123456789") == "" && cc[0] != '0'
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// FuzzParseTime: call_converted_at never panics, and what it accepts is UTC,
// not before 1970, at most 24 hours ahead, and writes as RFC 3339 that
// reads back as the same instant (partner-api#fields).
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-03-27T10:00:00Z", "2026-03-27T12:00:00+02:00", "1774605600", "1774605600123",
		"2026-03-27T10:00:00", "0000-01-01T00:00:00+00:01", "9999-12-31T23:59:59Z", "2026-03-27T10:00:00.123456789-11:59", "-1", ""} {
		f.Add(s, false)
		f.Add(s, true)
	}
	now := time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string, number bool) {
		v := rawValue{kind: rawString, text: s}
		if number {
			v.kind = rawNumber
		}
		got, msg := parseTime(v, now)
		if msg != "" {
			return
		}
		if got.Location() != time.UTC || got.Before(time.Unix(0, 0)) || got.Sub(now) > 24*time.Hour {
			t.Fatalf("accepted %q as %v", s, got)
		}
		out := got.Format(time.RFC3339Nano)
		back, err := time.Parse(time.RFC3339Nano, out)
		if err != nil || !back.Equal(got) || !strings.HasSuffix(out, "Z") {
			t.Fatalf("%q wrote %q, which reads back as %v (%v)", s, out, back, err)
		}
	})
}

// checkTags compares the tags an update holds with those the input meant,
// ignoring order and repeats of a removed key.
func checkTags(t *testing.T, u *Update, wantAdd map[string]string, wantRemove []string) {
	t.Helper()
	if len(wantAdd) != len(u.TagsAdd) {
		t.Fatalf("add %q read as %q", wantAdd, u.TagsAdd)
	}
	for _, tag := range u.TagsAdd {
		if v, ok := wantAdd[tag.Key]; !ok || v != tag.Value {
			t.Fatalf("add %q read as %q", wantAdd, u.TagsAdd)
		}
	}
	slices.Sort(wantRemove)
	wantRemove = slices.Compact(wantRemove)
	gotRemove := slices.Clone(u.TagsRemove)
	slices.Sort(gotRemove)
	if !slices.Equal(wantRemove, gotRemove) {
		t.Fatalf("remove %q read as %q", wantRemove, u.TagsRemove)
	}
}
