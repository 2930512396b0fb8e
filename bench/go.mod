module github.com/logsock/logsock/bench

go 1.26.0

require (
	github.com/logsock/logsock v0.0.0
	go.uber.org/zap v1.28.0
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/logsock/logsock => ../
