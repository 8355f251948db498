// Package query is the IoT Hub query language (docs/iothub.md §6) over device
// twins, module twins and device-job records: a lexer, a parser with
// positioned errors, an evaluator with IoT Hub's semantics (only boolean true
// selects, undefined propagates, comparisons only between primitives of one
// type), projections and aggregates with GROUP BY, paging by continuation
// token, and an equality index so that selective conditions do not scan.
//
// Parsed queries are immutable and safe for concurrent use.
package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalidQuery matches (errors.Is) every error about a query's text or a
// continuation token: the REST layer maps it to 400 (docs/iothub.md §4.5).
var ErrInvalidQuery = errors.New("invalid query")

// Error is a malformed query (or continuation token) with the 1-based
// character column where the problem was found. errors.Is(err,
// ErrInvalidQuery) is true for every *Error.
type Error struct {
	Pos int    // 1-based character column; queries are one line as far as IoT Hub is concerned
	Msg string // what is wrong, without position
}

// Error implements error: "query: line 1, column 27: expected ')' but found 'AND'".
func (e *Error) Error() string { return fmt.Sprintf("query: line 1, column %d: %s", e.Pos, e.Msg) }

// Is makes errors.Is(err, ErrInvalidQuery) true.
func (e *Error) Is(target error) bool { return target == ErrInvalidQuery }

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // names and keywords
	tString         // text holds the decoded value
	tNumber         // num holds the value
	tOp             // = != <> < > <= >= + - * / %
	tPunct          // ( ) [ ] , .
)

type token struct {
	kind tokKind
	text string // identifier, operator or punctuation text, or decoded string literal
	raw  string // source text of the token
	num  float64
	pos  int // 1-based column (characters)
}

// String describes the token for error messages.
func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of query"
	case tString:
		return quoteString(t.text)
	case tIdent:
		return "'" + t.text + "'"
	}
	return "'" + t.raw + "'"
}

// lex splits src into tokens, ending with a tEOF token.
func lex(src string) ([]token, error) {
	toks := make([]token, 0, len(src)/4+2)
	col := 1 // column of src[i]
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		var tok token
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			col++
			continue
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(src[i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, &Error{Pos: col, Msg: "the query is not valid UTF-8"}
			}
			if unicode.IsSpace(r) {
				i += n
				col++
				continue
			}
			if !unicode.IsLetter(r) {
				return nil, &Error{Pos: col, Msg: fmt.Sprintf("unexpected character %q", r)}
			}
			i = identEnd(src, i)
			tok = token{kind: tIdent, text: src[start:i]}
		case isIdentStart(c):
			i = identEnd(src, i)
			tok = token{kind: tIdent, text: src[start:i]}
		case c >= '0' && c <= '9':
			j, v, err := lexNumber(src, i)
			if err != nil {
				return nil, &Error{Pos: col, Msg: err.Error()}
			}
			i = j
			tok = token{kind: tNumber, num: v}
		case c == '\'' || c == '"':
			s, j, errOff, err := lexString(src, i)
			if err != nil {
				return nil, &Error{Pos: col + utf8.RuneCountInString(src[i:errOff]), Msg: err.Error()}
			}
			i = j
			tok = token{kind: tString, text: s}
		case strings.IndexByte("()[],.", c) >= 0:
			i++
			tok = token{kind: tPunct, text: src[start:i]}
		case strings.IndexByte("=!<>+-*/%", c) >= 0:
			i++
			if i < len(src) {
				switch src[start : i+1] {
				case "!=", "<>", "<=", ">=":
					i++
				case "==":
					return nil, &Error{Pos: col, Msg: "unexpected '==': equality is a single '='"}
				}
			}
			if src[start:i] == "!" {
				return nil, &Error{Pos: col, Msg: "unexpected '!': use != or NOT"}
			}
			tok = token{kind: tOp, text: src[start:i]}
		default:
			return nil, &Error{Pos: col, Msg: fmt.Sprintf("unexpected character %q", rune(c))}
		}
		tok.raw = src[start:i]
		tok.pos = col
		toks = append(toks, tok)
		col += utf8.RuneCountInString(src[start:i])
	}
	return append(toks, token{kind: tEOF, pos: col}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// identEnd returns the end of the identifier starting at src[i].
func identEnd(src string, i int) int {
	for i < len(src) {
		c := src[i]
		if isIdentStart(c) || c >= '0' && c <= '9' {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, n := utf8.DecodeRuneInString(src[i:])
		if r == utf8.RuneError && n <= 1 || !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		i += n
	}
	return i
}

// lexNumber reads a decimal (with optional fraction and exponent) or 0x hex
// number at src[i]; it returns the end offset and the value.
func lexNumber(src string, i int) (int, float64, error) {
	if i+1 < len(src) && src[i] == '0' && (src[i+1] == 'x' || src[i+1] == 'X') {
		j := i + 2
		for j < len(src) && isHex(src[j]) {
			j++
		}
		if j == i+2 {
			return 0, 0, errors.New("hex number has no digits after 0x")
		}
		if j < len(src) && (isIdentStart(src[j]) || src[j] >= utf8.RuneSelf) {
			return 0, 0, fmt.Errorf("malformed number %q", src[i:j+1])
		}
		v, err := strconv.ParseUint(src[i+2:j], 16, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("number %s is out of range", src[i:j])
		}
		return j, float64(v), nil
	}
	j := skipDigits(src, i)
	if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
		j = skipDigits(src, j+1)
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k >= len(src) || !isDigit(src[k]) {
			return 0, 0, fmt.Errorf("malformed number %q: the exponent has no digits", src[i:min(k+1, len(src))])
		}
		j = skipDigits(src, k)
	}
	if j < len(src) && (isIdentStart(src[j]) || src[j] >= utf8.RuneSelf) {
		_, n := utf8.DecodeRuneInString(src[j:])
		return 0, 0, fmt.Errorf("malformed number %q", src[i:j+n])
	}
	v, err := strconv.ParseFloat(src[i:j], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("number %s is out of range", src[i:j])
	}
	return j, v, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func skipDigits(src string, i int) int {
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	return i
}

// lexString decodes the string literal opening at src[i]. On error it
// returns the offset the error is about.
func lexString(src string, i int) (s string, end, errOff int, err error) {
	q := src[i]
	var b strings.Builder
	for j := i + 1; j < len(src); j++ {
		c := src[j]
		if c == q {
			return b.String(), j + 1, 0, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		esc := j
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
			r, ok := hex4(src, j+1)
			if !ok {
				return "", 0, esc, errors.New(`\u must be followed by 4 hex digits`)
			}
			j += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(src, j+3); ok && j+2 < len(src) && src[j+1] == '\\' && src[j+2] == 'u' {
					if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
						r = p
						j += 6
					}
				}
			}
			b.WriteRune(r)
		default:
			_, n := utf8.DecodeRuneInString(src[j:])
			return "", 0, esc, fmt.Errorf("unknown escape %q in string", src[esc:j+n])
		}
	}
	return "", 0, i, errors.New("string literal is not closed")
}

// hex4 reads 4 hex digits at src[i].
func hex4(src string, i int) (rune, bool) {
	if i < 0 || i+4 > len(src) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(src[i : i+4]) {
		if !isHex(c) {
			return 0, false
		}
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c-'a') + 10
		default:
			r |= rune(c-'A') + 10
		}
	}
	return r, true
}

// quoteString writes s as a single-quoted query literal that lexes back to s.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
