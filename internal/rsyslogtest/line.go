//go:build unix

package rsyslogtest

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseLine splits a line of the Lines template into the PROCID and the
// MSG of its message, undoing the escaping of rsyslog's "json" property
// option, which rsyslog 8.2302 writes as: \" \\ \/ \b \f \n \r \t, \u00XX
// for the other bytes below 0x20, and every other byte as it is (DEL and
// bytes above 0x7F too, valid UTF-8 or not). So msg holds the bytes that
// were sent, but for NUL, which rsyslog writes as "#000" before any
// template sees it (see the package documentation).
func ParseLine(line string) (procid string, msg []byte, err error) {
	procid, esc, ok := strings.Cut(line, " ")
	if !ok || procid == "" {
		return "", nil, fmt.Errorf("rsyslogtest: line %q: want \"PROCID MSG\"", line)
	}
	msg = make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		if c == '"' || c < 0x20 {
			return "", nil, fmt.Errorf("rsyslogtest: line %q: unescaped %q at byte %d of the message", line, c, i)
		}
		if c != '\\' {
			msg = append(msg, c)
			continue
		}
		if i+1 == len(esc) {
			return "", nil, fmt.Errorf("rsyslogtest: line %q: ends in a backslash", line)
		}
		i++
		switch e := esc[i]; e {
		case '"', '\\', '/':
			msg = append(msg, e)
		case 'b':
			msg = append(msg, '\b')
		case 'f':
			msg = append(msg, '\f')
		case 'n':
			msg = append(msg, '\n')
		case 'r':
			msg = append(msg, '\r')
		case 't':
			msg = append(msg, '\t')
		case 'u':
			// rsyslog writes \u only for bytes below 0x20, one byte each.
			v, err := strconv.ParseUint(esc[i+1:min(i+5, len(esc))], 16, 8)
			if err != nil || i+5 > len(esc) || v >= 0x20 {
				return "", nil, fmt.Errorf("rsyslogtest: line %q: bad escape %q at byte %d of the message", line, esc[i-1:min(i+5, len(esc))], i-1)
			}
			msg = append(msg, byte(v))
			i += 4
		default:
			return "", nil, fmt.Errorf("rsyslogtest: line %q: bad escape %q at byte %d of the message", line, esc[i-1:i+1], i-1)
		}
	}
	return procid, msg, nil
}
