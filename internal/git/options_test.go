package git_test

import (
	"fmt"
	"testing"

	"imagebot.dev/imagebot/internal/git"
	"imagebot.dev/imagebot/internal/testenv"
	"imagebot.dev/imagebot/internal/update"
)

// TestWithMessage: an Update's own message replaces the template's, is written from the
// edit's changes, and still gets [ci skip] and the sign-off.
func TestWithMessage(t *testing.T) {
	w := newWorld(t, seed(t))
	r := w.open(t, t.TempDir(), func(o *git.Options) {
		o.CISkip, o.SignOff = true, true
		o.Author = git.Signature{Name: "Bot", Email: "bot@example.com"}
	})
	msg := git.WithMessage(func(cs *update.ChangeSet) string {
		return fmt.Sprintf("Release %s to %s (by alice)\n\n- %s", cs.Changes[0].Container, cs.Changes[0].New, cs.Changes[0])
	})
	res, err := r.Update(ctxT(t), setImage("nginx", "nginx:1.17"), msg)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := testenv.Head(w.path, "main")
	want := "Release nginx to nginx:1.17 (by alice) [ci skip]\n\n- " + res.Changes.Changes[0].String() + "\n\nSigned-off-by: Bot <bot@example.com>\n"
	if head.Message != want || res.Message != want {
		t.Errorf("message %q (result %q), want %q", head.Message, res.Message, want)
	}
	// Nothing to change: the message is not asked for, nothing is committed.
	res, err = r.Update(ctxT(t), setImage("nginx", "nginx:1.17"), git.WithMessage(func(*update.ChangeSet) string { panic("asked") }))
	if err != nil || !res.Commit.IsZero() {
		t.Errorf("no-op update: %+v, %v", res, err)
	}
}
