package deploy_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's layout table lists every package of the repository's modules (the main one at the
// root and the nested ones, such as this directory's), and nothing that is not one.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	const module = "github.com/vidm-sync-worker/vidm-sync-worker/"
	var pkgs []string
	for _, dir := range moduleDirs(t) {
		cmd := exec.Command("go", "list", "./...")
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list in %s: %v", dir, err)
		}
		for _, p := range strings.Fields(string(out)) {
			pkgs = append(pkgs, strings.TrimPrefix(p, module))
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, _ := strings.Cut(string(readme), "## Layout\n")
	layout, _, _ = strings.Cut(layout, "\n## ")
	var listed []string
	for _, line := range strings.Split(layout, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(first, -1) {
			listed = append(listed, m[1])
		}
	}
	for _, p := range pkgs {
		if !slices.Contains(listed, p) {
			t.Errorf("package %s is missing from the README's layout table", p)
		}
	}
	for _, l := range listed {
		if !slices.Contains(pkgs, l) {
			t.Errorf("the README's layout table lists %s, which is not a package", l)
		}
	}
}

// moduleDirs returns the directories of the repository that hold a go.mod: the root and the
// nested modules. The go command ignores testdata and directories starting with . or _, and
// so does this.
func moduleDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != repoRoot && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && name == "go.mod" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dirs, repoRoot) {
		t.Fatalf("module directories %q: the repository's own is missing", dirs)
	}
	return dirs
}
