package caddymodule_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoFiles lists the repository's files whose names end in ext, as paths
// relative to its root, without hidden directories.
func repoFiles(t *testing.T, ext string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != ".." && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ext) {
			rel, _ := filepath.Rel("..", p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

var (
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading  = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	mdFence    = regexp.MustCompile("(?ms)^```.*?^```")
	docsAnchor = regexp.MustCompile(`(?:docs/)?(partner-api|operations)(?:\.md)?#([a-z0-9-]+)`)
)

// anchors are the ids a Markdown renderer gives a page's headings:
// lower case, punctuation dropped, spaces as hyphens, repeats numbered.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../" + file)
	if err != nil {
		t.Fatal(err)
	}
	text := mdFence.ReplaceAllString(string(data), "")
	ids := map[string]bool{}
	for _, m := range mdHeading.FindAllStringSubmatch(text, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		id := b.String()
		for n := 1; ids[id]; n++ {
			id = b.String() + "-" + string(rune('0'+n))
		}
		ids[id] = true
	}
	return ids
}

// Every relative link of every Markdown file, and its #anchor, resolves
// inside the repository.
func TestMarkdownLinks(t *testing.T) {
	pages := repoFiles(t, ".md")
	if len(pages) < 5 {
		t.Fatalf("found %d Markdown files", len(pages))
	}
	ids := map[string]map[string]bool{}
	anchorsOf := func(file string) map[string]bool {
		if ids[file] == nil {
			ids[file] = anchors(t, file)
		}
		return ids[file]
	}
	for _, page := range pages {
		data, _ := os.ReadFile("../" + page)
		text := mdFence.ReplaceAllString(string(data), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			file := page
			if target != "" {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(page), target))
				if strings.HasPrefix(file, "../") || filepath.IsAbs(target) {
					t.Errorf("%s: link %s leaves the repository", page, link)
					continue
				}
				if _, err := os.Stat("../" + file); err != nil {
					t.Errorf("%s: link %s: no such file in the repository", page, link)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(file, ".md") && !anchorsOf(file)[anchor] {
				t.Errorf("%s: link %s: %s has no heading #%s", page, link, file, anchor)
			}
		}
	}
}

// Code and tests cite the docs by anchor (docs/operations.md#the-queue,
// operations#the-queue); each must name a heading that exists.
func TestDocsAnchorsCitedByCode(t *testing.T) {
	cited := 0
	for _, file := range repoFiles(t, ".go") {
		data, _ := os.ReadFile("../" + file)
		for _, m := range docsAnchor.FindAllStringSubmatch(string(data), -1) {
			cited++
			if !anchors(t, "docs/"+m[1]+".md")[m[2]] {
				t.Errorf("%s cites %s#%s, which docs/%s.md has no heading for", file, m[1], m[2], m[1])
			}
		}
	}
	if cited < 50 {
		t.Fatalf("found %d citations of the docs in the code; the pattern no longer matches them", cited)
	}
}

// The repository owns its contract: no Markdown file names a file outside
// it or cites sections of another document.
func TestMarkdownSelfContained(t *testing.T) {
	// The folder beside the repository that a clone does not have.
	outside := filepath.Join("..", "shared")
	for _, page := range repoFiles(t, ".md") {
		data, _ := os.ReadFile("../" + page)
		for _, bad := range []string{"SPEC", "§", outside} {
			if strings.Contains(string(data), bad) {
				t.Errorf("%s mentions %q", page, bad)
			}
		}
	}
}
