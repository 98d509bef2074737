package server

import (
	"encoding/json"
	"fmt"

	"github.com/theaspect/aggregator"
)

// This file exposes the session's own input building and output checks to
// `aggregator call`, so the command line gives exactly the codes the browser
// would get. Nothing here has logic of its own.

// SuppliersInput builds the suppliers task's input from a browser request the
// way a session does (SPEC §3): the request's fields named in requestFields,
// then the same object again under "params". A request that is not a JSON
// object gives aggregator.ERequestJSON; a missing (or null) field gives
// aggregator.EIllegalRequest and the error names it.
func SuppliersInput(request []byte, requestFields []string) ([]byte, aggregator.Code, error) {
	r, code, missing := parseRequest(request, requestFields, nil)
	switch code {
	case aggregator.ERequestJSON:
		return nil, code, fmt.Errorf("the request is not a JSON object")
	case aggregator.EIllegalRequest:
		return nil, code, fmt.Errorf("the request lacks %q (aggregator.fields.request)", missing)
	}
	return r.input, "", nil
}

// ItemsInput builds an items task's input from one supplier element the way
// a session does (the element, re-encoded), and returns its class and info
// field (echoed to the browser as _info).
func ItemsInput(elem []byte, infoField string) (input []byte, class string, info json.RawMessage, err error) {
	fields, err := parseObject(elem)
	if err != nil {
		return nil, "", nil, fmt.Errorf("a supplier element must be a JSON object")
	}
	input, class, info = itemsTask(fields, infoField)
	return input, class, info, nil
}

// CheckOutput checks a script's answer as a session does: suppliers output
// must hold an array of objects under suppliersField; items output one under
// itemsField and, optionally, nested suppliers under suppliersField. It
// returns each element re-encoded, or the SPEC code the browser would get and
// the reason (the same text the server logs).
func CheckOutput(kind aggregator.Kind, out []byte, itemsField, suppliersField string) (items, suppliers []json.RawMessage, code aggregator.Code, err error) {
	o, code, err := checkOutput(kind, out, itemsField, suppliersField)
	if err != nil {
		return nil, nil, code, err
	}
	for _, f := range o.Items {
		items = append(items, encodeFields(f))
	}
	for _, f := range o.Suppliers {
		suppliers = append(suppliers, encodeFields(f))
	}
	return items, suppliers, "", nil
}
