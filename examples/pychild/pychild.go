// Package pychild holds child.py, a Python child that follows logsock's
// inheritance contract, so that a Go program can run it wherever it was
// built: examples/demo writes it to a temporary file and starts it with
// LogSocket.Start. (go:embed cannot reach a file outside the package's
// directory, hence this package beside the script.)
package pychild

import _ "embed"

// Script is child.py: "python3 child.py [-n COUNT] [--] MSG..." logs each
// MSG as one frame on the connection its parent passed it.
//
//go:embed child.py
var Script []byte
