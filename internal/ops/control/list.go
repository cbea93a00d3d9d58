package control

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
)

// DirectoryQuery selects a page of the directory list.
type DirectoryQuery struct {
	// Limit is the most directories on the page (at least 1).
	Limit int
	// After is the cursor a previous page returned as Next; "" starts at the beginning.
	After string
	// State keeps only the directories in this state; "" keeps all.
	State State
}

// States are the directory states, in the order an operator cares about them.
var States = []State{StateStuck, StateSyncing, StatePaused, StatePending, StateIdle}

// ErrBadCursor: a cursor that no page of the directory list returned.
var ErrBadCursor = errors.New("not a cursor of the directory list")

// PageDirectories cuts a page out of the directory list (as Directories returns it, in
// CompareDirectories order). The cursor names the last directory of the previous page by its
// place in the order, so a directory added or removed between two pages neither repeats nor
// shifts the others.
func PageDirectories(dirs []Directory, q DirectoryQuery) (DirectoryList, error) {
	var after *Directory
	if q.After != "" {
		d, err := decodeCursor(q.After)
		if err != nil {
			return DirectoryList{}, err
		}
		after = &d
	}
	out := DirectoryList{Directories: []Directory{}}
	for _, d := range dirs {
		if q.State != "" && d.State != q.State {
			continue
		}
		out.Total++
		if after != nil && CompareDirectories(d, *after) <= 0 {
			continue
		}
		if len(out.Directories) == max(q.Limit, 1) {
			last := out.Directories[len(out.Directories)-1]
			out.Next = encodeCursor(last)
			continue // counting the rest
		}
		out.Directories = append(out.Directories, d)
	}
	return out, nil
}

// A cursor is the sort key of a directory (tenant, name, id), base64url-encoded.
func encodeCursor(d Directory) string {
	return base64.RawURLEncoding.EncodeToString([]byte(d.Tenant + "\x00" + d.Name + "\x00" + d.DirectoryID))
}

func decodeCursor(c string) (Directory, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return Directory{}, ErrBadCursor
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 {
		return Directory{}, ErrBadCursor
	}
	return Directory{Tenant: parts[0], Name: parts[1], DirectoryID: parts[2]}, nil
}

// ValidState reports a state a directory can be in.
func ValidState(s State) bool { return slices.Contains(States, s) }
