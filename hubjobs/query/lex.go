// Package query is the IoT Hub query language (iothub.md §6): a lexer, a
// parser with positioned errors, an evaluator with IoT Hub's semantics (only
// boolean true selects, undefined propagates, comparisons between primitives
// only), projections and aggregates with GROUP BY, paging by continuation
// token, and an equality index so that selective conditions do not scan.
package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalidQuery matches (errors.Is) every error about a query's text.
var ErrInvalidQuery = errors.New("invalid query")

// Error is a query error with the 1-based column where it was found.
type Error struct {
	Pos int
	Msg string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("query: line 1, column %d: %s", e.Pos, e.Msg) }

// Is makes errors.Is(err, ErrInvalidQuery) true.
func (e *Error) Is(target error) bool { return target == ErrInvalidQuery }

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tOp    // = != <> < > <= >= + - * / %
	tPunct // ( ) [ ] , .
)

type token struct {
	kind tokKind
	text string // identifier / operator text, or decoded string literal
	num  float64
	pos  int // 1-based column (characters)
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

func lex(src string) ([]token, error) {
	var toks []token
	col := func(i int) int { return utf8.RuneCountInString(src[:i]) + 1 }
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: src[i:j], pos: col(i)})
			i = j
		case c >= '0' && c <= '9':
			j, v, err := lexNumber(src, i)
			if err != nil {
				return nil, &Error{Pos: col(i), Msg: err.Error()}
			}
			toks = append(toks, token{kind: tNumber, text: src[i:j], num: v, pos: col(i)})
			i = j
		case c == '\'' || c == '"':
			s, j, err := lexString(src, i)
			if err != nil {
				return nil, &Error{Pos: col(i), Msg: err.Error()}
			}
			toks = append(toks, token{kind: tString, text: s, pos: col(i)})
			i = j
		case strings.IndexByte("()[],.", c) >= 0:
			toks = append(toks, token{kind: tPunct, text: string(c), pos: col(i)})
			i++
		case strings.IndexByte("=!<>+-*/%", c) >= 0:
			op := string(c)
			if i+1 < len(src) {
				two := src[i : i+2]
				if two == "!=" || two == "<>" || two == "<=" || two == ">=" {
					op = two
				}
			}
			if op == "!" {
				return nil, &Error{Pos: col(i), Msg: "unexpected '!': use != or NOT"}
			}
			toks = append(toks, token{kind: tOp, text: op, pos: col(i)})
			i += len(op)
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, &Error{Pos: col(i), Msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
	return append(toks, token{kind: tEOF, pos: utf8.RuneCountInString(src) + 1}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func lexNumber(src string, i int) (int, float64, error) {
	if strings.HasPrefix(src[i:], "0x") || strings.HasPrefix(src[i:], "0X") {
		j := i + 2
		for j < len(src) && strings.IndexByte("0123456789abcdefABCDEF", src[j]) >= 0 {
			j++
		}
		if j == i+2 {
			return 0, 0, errors.New("hex number has no digits")
		}
		v, err := strconv.ParseUint(src[i+2:j], 16, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("hex number %s: out of range", src[i:j])
		}
		return j, float64(v), nil
	}
	j := i
	for j < len(src) && src[j] >= '0' && src[j] <= '9' {
		j++
	}
	if j < len(src) && src[j] == '.' && j+1 < len(src) && src[j+1] >= '0' && src[j+1] <= '9' {
		j++
		for j < len(src) && src[j] >= '0' && src[j] <= '9' {
			j++
		}
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && src[k] >= '0' && src[k] <= '9' {
			for k < len(src) && src[k] >= '0' && src[k] <= '9' {
				k++
			}
			j = k
		}
	}
	if j < len(src) && isIdentStart(src[j]) {
		return 0, 0, fmt.Errorf("malformed number %q", src[i:j+1])
	}
	v, err := strconv.ParseFloat(src[i:j], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed number %q", src[i:j])
	}
	return j, v, nil
}

func lexString(src string, i int) (string, int, error) {
	q := src[i]
	var b strings.Builder
	for j := i + 1; j < len(src); j++ {
		c := src[j]
		if c == q {
			return b.String(), j + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		j++
		if j >= len(src) {
			break
		}
		switch src[j] {
		case '\'', '"', '\\', '/':
			b.WriteByte(src[j])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if j+4 >= len(src) {
				return "", 0, errors.New("incomplete \\u escape")
			}
			v, err := strconv.ParseUint(src[j+1:j+5], 16, 32)
			if err != nil {
				return "", 0, fmt.Errorf("bad \\u escape %q", src[j:j+5])
			}
			b.WriteRune(rune(v))
			j += 4
		default:
			return "", 0, fmt.Errorf("unknown escape \\%c", src[j])
		}
	}
	return "", 0, errors.New("string literal is not closed")
}
