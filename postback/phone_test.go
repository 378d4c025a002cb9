package postback

import (
	"strings"
	"testing"
)

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name, in, cc, want string
	}{
		{"+ with separators", "+1 (555) 123-4567", "1", "+15551234567"},
		{"+ needs no default country code", "+15551234567", "", "+15551234567"},
		{"+ ignores the default country code", "+49 30 1234567", "1", "+49301234567"},
		{"(0) trunk prefix of an international number", "+44 (0)20 7946 0958", "1", "+442079460958"},
		{"00 international prefix", "0044 20 7946 0958", "1", "+442079460958"},
		{"00 needs no default country code", "00442079460958", "", "+442079460958"},
		{"national with default country code", "(555) 123-4567", "1", "+15551234567"},
		{"national with dots", "555.123.4567", "1", "+15551234567"},
		{"NANP 11 digits with dashes", "1-555-123-4567", "1", "+15551234567"},
		{"NANP 11 digits", "15551234567", "1", "+15551234567"},
		{"trunk 0 dropped", "020 7946 0958", "44", "+442079460958"},
		{"trunk 0 dropped, no separators", "02079460958", "44", "+442079460958"},
		{"trunk 0 with another country", "030 1234567", "49", "+49301234567"},
		{"11 digits starting with 1 elsewhere than NANP", "12345678901", "44", "+4412345678901"},
		{"7 digits", "+1234567", "", "+1234567"},
		{"15 digits", "+123456789012345", "", "+123456789012345"},
	}
	for _, tt := range ok {
		t.Run("partner-api#identifying-calls "+tt.name, func(t *testing.T) {
			if got, msg := NormalizePhone(tt.in, tt.cc); got != tt.want || msg != "" {
				t.Errorf("NormalizePhone(%q, %q) = %q, %q; want %q", tt.in, tt.cc, got, msg, tt.want)
			}
		})
	}
	bad := []struct {
		name, in, cc, says string
	}{
		{"6 digits", "+123456", "", "7 to 15"},
		{"16 digits", "+1234567890123456", "", "7 to 15"},
		{"national too short", "12345", "1", "7 to 15"},
		{"national too long", "5551234567890123", "1", "7 to 15"},
		{"national without a default country code", "555-123-4567", "", "international"},
		{"empty", "", "1", "7 to 15"},
		{"empty without a default country code", "", "", "international"},
		{"only +", "+", "1", "7 to 15"},
		{"letters", "1-800-FLOWERS", "1", "digits"},
		{"extension", "+1 555 123 4567 ext 8", "1", "digits"},
		{"+ in the middle", "1+5551234567", "1", "digits"},
		{"two +", "++15551234567", "", "digits"},
		{"+ after digits", "555+1234567", "1", "digits"},
		{"country code 0", "+0441234567", "", "country code"},
		{"00 then 0", "0001234567890", "", "country code"},
		{"full-width digits", "５５５1234567", "1", "digits"},
		{"tab", "555\t123\t4567", "1", "digits"},
		{"underscore", "555_123_4567", "1", "digits"},
		{"slash", "555/123/4567", "1", "digits"},
		{"too long input", "+1" + strings.Repeat(" ", 70) + "5551234567", "1", "too long"},
	}
	for _, tt := range bad {
		t.Run("partner-api#identifying-calls refused: "+tt.name, func(t *testing.T) {
			got, msg := NormalizePhone(tt.in, tt.cc)
			if got != "" || !strings.Contains(msg, tt.says) {
				t.Errorf("NormalizePhone(%q, %q) = %q, %q; want a refusal saying %q", tt.in, tt.cc, got, msg, tt.says)
			}
		})
	}
}
