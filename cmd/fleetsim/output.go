package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// emit writes a hub answer: indented JSON with -o json, else the table that
// table renders from it.
func emit(w io.Writer, format string, raw json.RawMessage, table func(io.Writer, json.RawMessage) error) error {
	if format == "json" || table == nil {
		return writeJSON(w, raw)
	}
	return table(w, raw)
}

func writeJSON(w io.Writer, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("null")
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("hub answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// objects decodes a JSON array of objects.
func objects(raw json.RawMessage) ([]map[string]any, error) {
	var items []map[string]any
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("unexpected answer from the hub: %w", err)
	}
	return items, nil
}

// object decodes a JSON object.
func object(raw json.RawMessage) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("unexpected answer from the hub: %w", err)
	}
	return m, nil
}

// field reads a dotted path ("deviceJobStatistics.deviceCount") as text.
func field(m map[string]any, path string) string {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	return text(v)
}

// text formats a JSON value for a table cell.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	case bool:
		return fmt.Sprint(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// column is a table column: a heading and the dotted path of its value.
type column struct{ head, path string }

// tableOf renders rows of JSON objects as an aligned table.
func tableOf(w io.Writer, items []map[string]any, cols []column, empty string) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var heads []string
	for _, c := range cols {
		heads = append(heads, c.head)
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, it := range items {
		var cells []string
		for _, c := range cols {
			cells = append(cells, cell(field(it, c.path)))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell keeps a table cell on one line and at most 60 characters.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}

// keyValues renders an object's fields, given ones first, as "key: value" lines.
func keyValues(w io.Writer, m map[string]any, cols []column) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cols {
		if v := field(m, c.path); v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", c.head, v)
		}
	}
	return tw.Flush()
}

// genericColumns picks columns for query results: ids first, then the other
// scalar fields in order, at most eight.
func genericColumns(items []map[string]any) []column {
	seen := map[string]bool{}
	var keys []string
	for _, it := range items {
		for k, v := range it {
			if _, isObj := v.(map[string]any); isObj || seen[k] {
				continue
			}
			if _, isArr := v.([]any); isArr {
				continue
			}
			seen[k] = true
			keys = append(keys, k)
		}
	}
	rank := func(k string) int {
		switch strings.ToLower(k) {
		case "deviceid":
			return 0
		case "jobid":
			return 1
		case "moduleid":
			return 2
		case "status":
			return 3
		}
		return 4
	}
	slices.SortFunc(keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	if len(keys) > 8 {
		keys = keys[:8]
	}
	var cols []column
	for _, k := range keys {
		cols = append(cols, column{strings.ToUpper(k), k})
	}
	return cols
}
