package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the Docker build context: the repository root, one level up from deploy/.
const repoRoot = ".."

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, COPY, …
	args string
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []instruction
		pending strings.Builder
		start   int
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		pending.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument list.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("Dockerfile line %d: %s %s is not in exec form (a JSON array); distroless has no shell", in.line, in.cmd, in.args)
	}
	return argv
}

// dockerignored reports whether .dockerignore excludes a path of the build context.
func dockerignored(t *testing.T, p string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		return false
	}
	ignored := false
	for line := range strings.SplitSeq(string(b), "\n") {
		pat := strings.TrimSpace(line)
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		neg := strings.HasPrefix(pat, "!")
		pat = strings.TrimSuffix(strings.TrimPrefix(pat, "!"), "/")
		if ok, _ := path.Match(pat, p); ok || strings.HasPrefix(p, pat+"/") {
			ignored = !neg
		}
	}
	return ignored
}

// TestDockerfileMatchesTheRepository: no Docker engine runs in CI, so the Dockerfile is checked
// against the repository instead: a Go toolchain stage of go.mod's Go version builds ./cmd/...
// statically from sources that exist and are not .dockerignored; the final stage is distroless
// nonroot and copies the build stage's output; ENTRYPOINT and HEALTHCHECK run the worker binary
// it contains (HEALTHCHECK through the worker's healthcheck subcommand); the admin and ingress
// ports are exposed; the OCI labels are set.
func TestDockerfileMatchesTheRepository(t *testing.T) {
	ins := parseDockerfile(t)
	stages := map[string]bool{}
	var (
		froms      []string
		outDir     string
		copyDest   string
		entrypoint []string
		health     []string
		exposed    []string
		user       string
		labels     = map[string]bool{}
	)
	goVersion := goModVersion(t)
	for _, in := range ins {
		fields := strings.Fields(in.args)
		switch in.cmd {
		case "FROM":
			froms = append(froms, fields[0])
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				stages[fields[2]] = true
			}
		case "COPY":
			var from string
			var rest []string
			for _, f := range fields {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(f, "--") {
					rest = append(rest, f)
				}
			}
			if len(rest) < 2 {
				t.Fatalf("Dockerfile line %d: COPY needs a source and a destination", in.line)
			}
			srcs, dest := rest[:len(rest)-1], rest[len(rest)-1]
			if from != "" {
				if !stages[from] {
					t.Errorf("Dockerfile line %d: COPY --from=%s names no earlier stage (stages: %v)", in.line, from, stages)
				}
				if outDir != "" && !slices.Contains(srcs, outDir) {
					t.Errorf("Dockerfile line %d: COPY --from=%s copies %v, but the build writes to %s", in.line, from, srcs, outDir)
				}
				copyDest = dest
				continue
			}
			for _, src := range srcs {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("Dockerfile line %d: COPY source %s does not exist in the repository", in.line, src)
				}
				if src != "." && dockerignored(t, src) {
					t.Errorf("Dockerfile line %d: COPY source %s is excluded by .dockerignore", in.line, src)
				}
			}
		case "RUN":
			if !strings.Contains(in.args, "go build") {
				continue
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("Dockerfile line %d: go build without %s", in.line, want)
				}
			}
			if m := regexp.MustCompile(`-o\s+(\S+)`).FindStringSubmatch(in.args); m != nil {
				outDir = m[1]
			} else {
				t.Errorf("Dockerfile line %d: go build without -o", in.line)
			}
			// The image holds the product only: the worker, not the simulator or the tools.
			if built := regexp.MustCompile(`\./cmd/\S+`).FindAllString(in.args, -1); !slices.Equal(built, []string{"./cmd/vidm-sync-worker"}) {
				t.Errorf("Dockerfile line %d: go build %v, want ./cmd/vidm-sync-worker only", in.line, built)
			}
			for _, f := range fields {
				if pkg, ok := strings.CutPrefix(f, "./"); ok {
					dir := strings.TrimSuffix(strings.TrimSuffix(pkg, "..."), "/")
					if st, err := os.Stat(filepath.Join(repoRoot, dir)); err != nil || !st.IsDir() {
						t.Errorf("Dockerfile line %d: go build ./%s: no such package directory", in.line, pkg)
					}
				}
			}
		case "ENTRYPOINT":
			entrypoint = execForm(t, in)
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile line %d: HEALTHCHECK without CMD", in.line)
			}
			health = execForm(t, instruction{line: in.line, cmd: "HEALTHCHECK CMD", args: strings.TrimSpace(cmd)})
		case "EXPOSE":
			exposed = append(exposed, fields...)
		case "USER":
			user = in.args
		case "LABEL":
			for _, m := range regexp.MustCompile(`([a-z0-9.\-]+)=`).FindAllStringSubmatch(in.args, -1) {
				labels[m[1]] = true
			}
		}
	}

	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a runtime stage", len(froms))
	}
	if !strings.HasPrefix(froms[0], "golang:"+goVersion) {
		t.Errorf("build stage FROM %s: go.mod wants Go %s", froms[0], goVersion)
	}
	if last, _, _ := strings.Cut(froms[len(froms)-1], "@"); last != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", last)
	}
	// Pinned by digest: a tag moves, and a rebuild must not pull other bytes unnoticed.
	for _, f := range froms {
		if !regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(f) {
			t.Errorf("FROM %s is not pinned by digest", f)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u != "nonroot" && u != strconv.Itoa(distrolessNonroot) {
		t.Errorf("USER %q: the image must run as the distroless nonroot user", user)
	}

	// The worker binary: go build -o DIR/ ./cmd/NAME names the binary after its directory.
	worker := path.Join(copyDest, "vidm-sync-worker")
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", "vidm-sync-worker", "main.go")); err != nil {
		t.Fatalf("cmd/vidm-sync-worker/main.go: %v", err)
	}
	if len(entrypoint) == 0 || entrypoint[0] != worker {
		t.Errorf("ENTRYPOINT %v, want the built worker %s", entrypoint, worker)
	}
	if len(health) != 2 || health[0] != worker || health[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK CMD %v, want [%s healthcheck]", health, worker)
	}
	main, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "vidm-sync-worker", "main.go"))
	if err != nil || !strings.Contains(string(main), `"healthcheck"`) {
		t.Error("cmd/vidm-sync-worker/main.go does not dispatch the healthcheck subcommand the HEALTHCHECK runs")
	}

	defaults := loadConfig(t, requiredEnv())
	for what, addr := range map[string]string{"ADMIN_ADDR": defaults.AdminAddr, "INGRESS_ADDR": defaults.IngressAddr} {
		p := strconv.Itoa(int(port(t, addr)))
		if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("EXPOSE %v lacks %s (%s's default %q)", exposed, p, what, addr)
		}
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source",
		"org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !labels[l] {
			t.Errorf("LABEL %s is missing", l)
		}
	}
}

// goModVersion is go.mod's go directive as major.minor ("1.26").
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}
