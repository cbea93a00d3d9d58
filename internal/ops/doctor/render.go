package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// maxDetail bounds one check's detail on a line.
const maxDetail = 4 << 10

// WriteText writes the report for people: one line per check, the problems' details in full.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("vidm-sync-worker check: read-only (no sync is started, nothing is written)\n")
	sections := append([]Section{r.NATS}, r.Tenants...)
	for i, s := range sections {
		title := s.Name
		if i > 0 {
			title = "tenant " + s.Name
		}
		fmt.Fprintf(&b, "\n%s", title)
		for _, part := range []string{s.Kind, s.URL} {
			if part != "" {
				fmt.Fprintf(&b, "  %s", part)
			}
		}
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, c := range s.Checks {
			// Names and details carry the servers' text (directory names, certificate subjects):
			// cleaned, so that none can move a terminal's cursor or forge a line.
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", strings.ToUpper(string(c.Status)), safetext.Clean(c.Name, 256), safetext.Clean(c.Detail, maxDetail))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fails, warns := r.count(Fail), r.count(Warn)
	if r.OK {
		fmt.Fprintf(&b, "\nOK: every check the worker relies on passed (%d warnings)\n", warns)
	} else {
		fmt.Fprintf(&b, "\nFAILED: %d checks failed, %d warnings\n", fails, warns)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r Report) count(st Status) int {
	n := 0
	for _, s := range append([]Section{r.NATS}, r.Tenants...) {
		for _, c := range s.Checks {
			if c.Status == st {
				n++
			}
		}
	}
	return n
}
