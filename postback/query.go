package postback

import (
	"net/url"
	"strings"
)

// QueryParam returns the first value of name in a raw query string,
// unescaped, without parsing the rest of it.
func QueryParam(raw, name string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k == name || (strings.Contains(k, "%") && unescapeOr(k) == name) {
			return unescapeOr(v)
		}
	}
	return ""
}

func unescapeOr(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return ""
	}
	return u
}
