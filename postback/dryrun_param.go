package postback

import "strings"

// DryRunHeader asks for a dry run where a parameter cannot be added
// (docs/partner-api.md#dry-run).
const DryRunHeader = "Postback-Dry-Run"

// parseFlag reads a yes-or-no value: JSON true or false, or 1, 0, true,
// false, yes, no in any case.
func parseFlag(v rawValue) (bool, bool) {
	switch v.kind {
	case rawBool:
		return v.text == "true", true
	case rawNumber, rawString:
		switch {
		case v.text == "1", strings.EqualFold(v.text, "true"), strings.EqualFold(v.text, "yes"):
			return true, true
		case v.text == "0", strings.EqualFold(v.text, "false"), strings.EqualFold(v.text, "no"):
			return false, true
		}
	}
	return false, false
}

const flagMessage = "must be true or false (also 1/0, yes/no)"

// validateDryRun reads dry_run; an invalid value is a field error, as any
// other (docs/partner-api.md#dry-run).
func validateDryRun(in *input) bool {
	if !in.hasDryRun {
		return false
	}
	on, ok := parseFlag(in.dryRun)
	if !ok {
		in.errs.add("dry_run", flagMessage)
	}
	return on
}

// DryRunFromHeader adds the Postback-Dry-Run header's say to the
// parameters' (on): either asking for a dry run makes one, since a dry run
// is the side that writes nothing. A header that is not a flag, or given
// twice, is a 400 naming it.
func DryRunFromHeader(values []string, on bool) (bool, *Error) {
	switch len(values) {
	case 0:
		return on, nil
	case 1:
	default:
		return false, fieldError(DryRunHeader, "given more than once")
	}
	h, ok := parseFlag(queryValue(strings.TrimSpace(values[0])))
	if !ok {
		return false, fieldError(DryRunHeader, flagMessage)
	}
	return on || h, nil
}

func fieldError(field, message string) *Error {
	fe := fieldErrors{{Field: field, Message: message}}
	return fe.err()
}
