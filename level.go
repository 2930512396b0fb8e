package logsock

import (
	"encoding/hex"
	"fmt"
)

// Level is a record's severity, as RFC 5424 numbers it (v1's are LevelInfo).
type Level uint8

const (
	LevelEmergency Level = iota // the system is unusable
	LevelAlert                  // act at once
	LevelCritical
	LevelError
	LevelWarning
	LevelNotice // normal but significant
	LevelInfo
	LevelDebug
)

var levelNames = [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// String returns the level's syslog keyword, from "emerg" to "debug".
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// MarshalText returns String's keyword.
func (l Level) MarshalText() ([]byte, error) {
	if l > LevelDebug {
		return nil, fmt.Errorf("logsock: unknown level %d", uint8(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText accepts String's keywords, and "error" and "warn".
func (l *Level) UnmarshalText(text []byte) error {
	switch s := string(text); s {
	case "error":
		*l = LevelError
		return nil
	case "warn":
		*l = LevelWarning
		return nil
	default:
		for i, name := range levelNames {
			if s == name {
				*l = Level(i)
				return nil
			}
		}
	}
	return fmt.Errorf("logsock: level %q: want one of %v", text, levelNames)
}

// SessionID names a v2 client's session, random and kept across reconnects.
type SessionID [16]byte

// String returns the id in hexadecimal (32 digits).
func (id SessionID) String() string { return hex.EncodeToString(id[:]) }
