package caddymodule_test

import (
	"bytes"
	"encoding/json"
)

// canonical re-encodes JSON with sorted keys, keeping numbers as written.
func canonical(dst *bytes.Buffer, s string) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dst.Write(b)
	return nil
}
