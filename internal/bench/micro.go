package bench

import (
	"context"
	"fmt"
	"os/exec"
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
	return string(out), nil
}
