package logsock

import "errors"

// The errors that calls return or wrap, to match with errors.Is.
var (
	ErrClosed           = errors.New("logsock: LogSocket closed")           // every call after Close
	ErrBufferFull       = errors.New("logsock: buffer full, frame dropped") // see Overflow
	ErrUndelivered      = errors.New("logsock: frames undelivered")         // wrapped by Flush's and Close's
	ErrFrameTooLarge    = errors.New("logsock: frame too large")            // Log's, and a *ProtocolError's
	ErrNegativeLength   = errors.New("logsock: negative frame length")      // a *ProtocolError's
	ErrInvalidCodePoint = errors.New("logsock: invalid UTF-8 where the length counts code points")
	ErrServerClosed     = errors.New("logsock: Server closed")                              // Serve's after Shutdown or Close; ReasonShutdown's
	ErrNotInherited     = errors.New("logsock: no inherited connection in the environment") // FromEnv's
	ErrStaleFD          = errors.New("logsock: descriptor is not the connection meant")     // an *EnvError's
)
