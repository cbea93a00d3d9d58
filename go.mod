module github.com/vidm-sync-worker/vidm-sync-worker

go 1.26.0

require (
	github.com/lmittmann/tint v1.2.1
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	golang.org/x/sync v0.24.0
)

require golang.org/x/text v0.14.0 // indirect
