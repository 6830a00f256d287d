package daemon

import "testing"

func TestCanonicalGitURL(t *testing.T) {
	want := "github.com/org/repo"
	for _, u := range []string{
		"ssh://git@github.com/org/repo.git", "git@github.com:org/repo.git", "https://github.com/org/repo",
		"https://user@github.com/org/repo.git/", "ssh://git@github.com:22/Org/Repo.git", "HTTPS://GitHub.com/org/repo.git",
	} {
		if got := canonicalGitURL(u); got != want {
			t.Errorf("canonicalGitURL(%q) = %q, want %q", u, got, want)
		}
	}
	if got := canonicalGitURL("https://github.com/org/other.git"); got == want {
		t.Errorf("another repository reads as the same: %q", got)
	}
}
