package postback

import "time"

// AppendPatch appends the call-store PATCH body of docs/operations.md#updating-a-call: only the
// fields the postback carried, null for those it cleared, amounts as JSON
// numbers with the digits as received, times in UTC with Z.
func (u *Update) AppendPatch(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	key := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	cleared := func(f field) bool {
		if u.Cleared.has(f) {
			dst = append(dst, "null"...)
			return true
		}
		return false
	}
	if u.Set.has(fieldConverted) {
		key("converted")
		if u.Converted {
			dst = append(dst, "true"...)
		} else {
			dst = append(dst, "false"...)
		}
	}
	if u.Set.has(fieldConvertedAt) {
		key("call_converted_at")
		if !cleared(fieldConvertedAt) {
			dst = append(dst, '"')
			dst = u.ConvertedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
			dst = append(dst, '"')
		}
	}
	if u.Set.has(fieldRevenue) {
		key("revenue_paid_out")
		dst = append(dst, u.Revenue...)
	}
	if u.Set.has(fieldPublisher) {
		key("publisher_paid_out")
		dst = append(dst, u.Publisher...)
	}
	if u.Set.has(fieldReason) {
		key("reason")
		if !cleared(fieldReason) {
			dst = appendString(dst, u.Reason)
		}
	}
	if u.Set.has(fieldNoPayoutReason) {
		key("no_payout_reason")
		if !cleared(fieldNoPayoutReason) {
			dst = appendString(dst, u.NoPayoutReason)
		}
	}
	if len(u.TagsAdd) > 0 || len(u.TagsRemove) > 0 {
		key("tags")
		dst = append(dst, '{')
		if len(u.TagsAdd) > 0 {
			dst = append(dst, `"add":{`...)
			for i, t := range u.TagsAdd {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, t.Key)
				dst = append(dst, ':')
				dst = appendString(dst, t.Value)
			}
			dst = append(dst, '}')
		}
		if len(u.TagsRemove) > 0 {
			if len(u.TagsAdd) > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `"remove":`...)
			dst = appendStrings(dst, u.TagsRemove)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
