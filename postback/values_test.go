package postback

import (
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#fields revenue_paid_out: decimals of ASCII digits, at most 4 places, no sign, exponent, currency or separators", func(t *testing.T) {
		ok := []struct {
			in   string
			want Amount
		}{
			{"0", 0}, {"0.0", 0}, {"0.0000", 0}, {"1", 10000}, {"25.50", 255000}, {"25.5", 255000}, {"0.0001", 1},
			{"12.3456", 123456}, {"10.10", 101000}, {"1000000", 10000000000}, {"99999999999999.9999", 999999999999999999},
		}
		for _, tt := range ok {
			if got, msg := ParseAmount(tt.in); msg != "" || got != tt.want {
				t.Errorf("partner-api#fields ParseAmount(%q) = %d, %q; want %d", tt.in, got, msg, tt.want)
			}
		}
		bad := []struct {
			in, says string
		}{
			{"", "decimal"}, {".5", "decimal"}, {"5.", "decimal"}, {".", "decimal"}, {"-1", "negative"}, {"-0.5", "negative"}, {"-", "negative"},
			{"+5", "sign"}, {"1e3", "exponent"}, {"1E3", "exponent"}, {"1.5e2", "exponent"}, {"0x10", "decimal"}, {"1,000", "separators"},
			{"1 000", "separators"}, {"1_000", "decimal"}, {"$5", "currency"}, {"5€", "currency"}, {" 5", "decimal"}, {"5 ", "decimal"},
			{"1.23456", "4 decimal places"}, {"0.00000", "4 decimal places"}, {"00", "leading zeros"}, {"007", "leading zeros"},
			{"00.5", "leading zeros"}, {"1.2.3", "decimal"}, {"١٢", "decimal"}, {"１", "decimal"}, {"NaN", "decimal"}, {"Infinity", "decimal"},
			{"123456789012345", "too large"}, {strings.Repeat("9", 40), "too large"},
		}
		for _, tt := range bad {
			if got, msg := ParseAmount(tt.in); msg == "" || !strings.Contains(msg, tt.says) {
				t.Errorf("partner-api#fields ParseAmount(%q) = %d, %q; want a refusal saying %q", tt.in, got, msg, tt.says)
			}
		}
	})
}

func TestAmountString(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#fields amounts print without trailing zeros and parse back", func(t *testing.T) {
		for _, tt := range []struct {
			a    Amount
			want string
		}{
			{0, "0"}, {1, "0.0001"}, {10, "0.001"}, {5000, "0.5"}, {255000, "25.5"}, {10000, "1"}, {100001, "10.0001"},
			{123456, "12.3456"}, {10000000000, "1000000"}, {DefaultMaxAmount, "1000000"}, {999999999999999999, "99999999999999.9999"},
		} {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("Amount(%d).String() = %q, want %q", int64(tt.a), got, tt.want)
			}
			if back, msg := ParseAmount(tt.want); msg != "" || back != tt.a {
				t.Errorf("ParseAmount(%q) = %d, %q; want %d back", tt.want, back, msg, int64(tt.a))
			}
		}
	})
}

func TestParseMoney(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#fields amounts up to max_amount, sent with the digits as received", func(t *testing.T) {
		for _, tt := range []struct {
			v        rawValue
			want, in string // want: the text sent upstream; in: a refusal substring
		}{
			{rawValue{kind: rawNumber, text: "25.50"}, "25.50", ""},
			{rawValue{kind: rawString, text: "25.50"}, "25.50", ""},
			{queryValue("1000000"), "1000000", ""},
			{queryValue("1000000.0001"), "", "at most 1000000"},
			{queryValue("2000000"), "", "at most 1000000"},
			{rawValue{kind: rawBool, text: "true"}, "", "not a boolean"},
			{rawValue{kind: rawNull}, "", "not null"},
			{queryValue(""), "", "decimal"},
		} {
			got, msg := parseMoney(tt.v, DefaultMaxAmount)
			if got != tt.want || (tt.in == "") != (msg == "") || !strings.Contains(msg, tt.in) {
				t.Errorf("partner-api#fields parseMoney(%+v) = %q, %q; want %q, %q", tt.v, got, msg, tt.want, tt.in)
			}
		}
	})
}
