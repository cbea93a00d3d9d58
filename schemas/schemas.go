// Package schemas holds the JSON Schemas (draft 2020-12) of the data payloads of every CloudEvent
// the worker consumes or publishes. They are the single source of truth for the event contract:
// the worker validates trigger data against them before accepting a trigger, and the tests and the
// generated documentation use the same files.
//
// The schemas are embedded in [FS], one file per payload, named by the constants below. Each
// schema's $id is [BaseURL] followed by its file name, so a validator can register every file of
// [Names] under BaseURL+name and compile them by that URL. The schemas mean "format" (hostname,
// date-time, uri-reference) as an assertion, so a validator must be configured to assert formats
// (draft 2020-12 treats them as annotations by default).
package schemas

import "embed"

// BaseURL is the prefix of every schema's $id: a schema's $id is BaseURL followed by its file name.
const BaseURL = "https://vidm-sync-worker.dev/schemas/"

// File names of the schemas in [FS].
const (
	// ADTrigger is the data of the ad.group.* and ad.user.* trigger events (ad.group.created, …).
	ADTrigger = "ad-trigger.data.schema.json"
	// SyncRequested is the data of the vidm.directory.sync.requested trigger event.
	SyncRequested = "sync-requested.data.schema.json"
	// SyncStarted is the data of the vidm.directory.sync.started result event.
	SyncStarted = "sync-started.data.schema.json"
	// SyncResult is the data of the vidm.directory.sync.completed and .failed result events.
	SyncResult = "sync-result.data.schema.json"
	// SyncTokenExpiring is the data of the vidm.identity.synctoken.expiring warning event.
	SyncTokenExpiring = "synctoken-expiring.data.schema.json"
)

// FS holds every schema file, at the top level, under the names of the constants above.
// It is read-only.
//
//go:embed *.json
var FS embed.FS

// TenantsFile is the schema of the tenants file (TENANTS_FILE), in [ConfigFS]: the worker's
// configuration, not an event payload. Its $id is BaseURL followed by this name.
const TenantsFile = "config/tenants-file.schema.json"

// ConfigFS holds the schemas of configuration files, under config/. It is read-only.
//
//go:embed config/*.json
var ConfigFS embed.FS

// Names returns the file names of all schemas in [FS], in a new slice on each call.
func Names() []string {
	return []string{ADTrigger, SyncRequested, SyncStarted, SyncResult, SyncTokenExpiring}
}
