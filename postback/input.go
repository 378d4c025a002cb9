package postback

import (
	"strings"
)

// input gathers what one request said, from every source, before
// validation. Both parsers fill it; validate applies the rules once.
type input struct {
	id       string   // a single call_log_id
	ids      []string // the elements of a call_log_id array
	idsArray bool     // call_log_id came as a JSON array (a batch, docs/partner-api.md#batches)
	idsFrom  string   // where the id or ids were first given
	idErrs   bool

	phone     rawValue
	hasPhone  bool
	phoneFrom string

	// dry_run, where first given (docs/partner-api.md#dry-run).
	dryRun     rawValue
	hasDryRun  bool
	dryRunFrom string

	set    fieldSet
	values [numFields]rawValue
	names  [numFields]string // the name a field was given as (reason or disposition)
	from   [numFields]string // where it was given, for conflict messages

	// Tags given as add[key]=value and remove=key in a query or form.
	queryAdd    []Tag
	queryRemove []string

	// idempotency_key (docs/partner-api.md#safe-retries), top level only.
	idemKey     rawValue
	hasIdemKey  bool
	idemKeyFrom string

	ignored []string
	errs    fieldErrors
}

// setField records one occurrence of a field; a second occurrence must
// carry the same value (docs/partner-api.md#request-format, partner-api#the-fields-object, and the disposition alias of partner-api#fields).
func (in *input) setField(f field, name string, v rawValue, from string) {
	if !in.set.has(f) {
		in.set |= fieldSet(1) << f
		in.values[f], in.names[f], in.from[f] = v, name, from
		return
	}
	if in.values[f].sameAs(v) {
		return
	}
	switch {
	case in.names[f] != name:
		in.errs.add(f.String(), in.names[f]+" and "+name+" are the same field and were given different values")
	default:
		in.errs.add(f.String(), "given twice with different values ("+in.from[f]+" and "+from+")")
	}
}

// setID records a single call_log_id of one source; sources must agree.
func (in *input) setID(id, from string) {
	switch {
	case in.idsFrom == "":
		in.id, in.idsFrom = id, from
	case in.idsArray || in.id != id:
		in.errs.add("call_log_id", "given twice with different values ("+in.idsFrom+" and "+from+")")
	}
}

// setIDList records a call_log_id array; only a JSON body carries one.
func (in *input) setIDList(ids []string, from string) {
	if in.idsFrom != "" {
		in.errs.add("call_log_id", "given twice with different values ("+in.idsFrom+" and "+from+")")
		return
	}
	in.ids, in.idsArray, in.idsFrom = ids, true, from
}

func (in *input) setPhone(v rawValue, from string) {
	if !in.hasPhone {
		in.phone, in.hasPhone, in.phoneFrom = v, true, from
		return
	}
	if !in.phone.sameAs(v) {
		in.errs.add("phone_number", "given twice with different values ("+in.phoneFrom+" and "+from+")")
	}
}

func (in *input) setIdempotencyKey(v rawValue, from string) {
	if !in.hasIdemKey {
		in.idemKey, in.hasIdemKey, in.idemKeyFrom = v, true, from
		return
	}
	if !in.idemKey.sameAs(v) {
		in.errs.add(paramIdempotencyKeyName, "given twice with different values ("+in.idemKeyFrom+" and "+from+")")
	}
}

func (in *input) setDryRun(v rawValue, from string) {
	if !in.hasDryRun {
		in.dryRun, in.hasDryRun, in.dryRunFrom = v, true, from
		return
	}
	// As flags: dry_run=1 in the query and "dry_run": true agree.
	first, ok1 := parseFlag(in.dryRun)
	second, ok2 := parseFlag(v)
	if !ok1 || !ok2 || first != second {
		in.errs.add("dry_run", "given twice with different values ("+in.dryRunFrom+" and "+from+")")
	}
}

func (in *input) ignore(name string) {
	for _, n := range in.ignored {
		if n == name {
			return
		}
	}
	in.ignored = append(in.ignored, name)
}

// param sorts one top-level or fields-level name for both parsers.
type param uint8

const (
	paramUnknown param = iota
	paramCallLogID
	paramPhone
	paramAuth
	paramFields
	paramField
	paramIdempotencyKey
	paramDryRun
)

func classify(name, authParam string) (param, field) {
	switch name {
	case "call_log_id":
		return paramCallLogID, 0
	case "phone_number":
		return paramPhone, 0
	case "fields":
		return paramFields, 0
	case paramIdempotencyKeyName:
		return paramIdempotencyKey, 0
	case "dry_run":
		return paramDryRun, 0
	case authParam:
		return paramAuth, 0
	}
	if f, ok := lookupField(name); ok {
		return paramField, f
	}
	return paramUnknown, 0
}

// splitRemove splits a comma-separated remove value of a query or form.
func splitRemove(s string) []string {
	var out []string
	for _, k := range strings.Split(s, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}
