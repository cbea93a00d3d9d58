package bench

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// microbenchmarks runs the packages' Go benchmarks and returns their output for the report.
func microbenchmarks(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "./internal/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("microbenchmarks: %w\n%s", err, out)
	}
	// Packages without benchmarks only add noise to the report.
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "[no test files]") || strings.Contains(l, "[no tests to run]") || strings.TrimSpace(l) == "PASS" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n"), nil
}
