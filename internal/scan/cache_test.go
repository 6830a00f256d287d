package scan_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	bolt "go.etcd.io/bbolt"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// TestCacheRebuildsBadStores: a store that cannot be used is moved aside and rebuilt with
// a warning; the scanner works on the new one.
func TestCacheRebuildsBadStores(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	push(t, host, authn.Anonymous, "app", "v1", testenv.ImageSpec{Created: base})
	repo := repoOf(t, host, "app")

	oldFormat := func(path string) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			b, _ := tx.CreateBucketIfNotExists([]byte("info"))
			if err := b.Put([]byte("version"), []byte("imagebot-scan-0")); err != nil {
				return err
			}
			_, err := tx.CreateBucketIfNotExists([]byte("repos"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	valid := func(path string) { // a good store, then its pages scribbled over
		c, err := scan.OpenCache(filepath.Dir(path), scan.CacheOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := scan.New(scan.Options{Cache: c}).Scan(ctxT(t), repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true}); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	cases := []struct {
		name   string
		make   func(path string)
		reason string
	}{
		{"garbage", func(p string) { os.WriteFile(p, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600) }, "invalid"},
		{"truncated", func(p string) { valid(p); os.Truncate(p, 1000) }, ""},
		{"old format", oldFormat, `format "imagebot-scan-0"`},
		{"zeroed meta pages", func(p string) {
			valid(p)
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt(make([]byte, 8192), 0)
			f.Close()
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "scan.db")
			tc.make(path)
			var logs bytes.Buffer
			c, err := scan.OpenCache(dir, scan.CacheOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("OpenCache: %v", err)
			}
			defer c.Close()
			if c.Rebuilt() == "" || !strings.Contains(c.Rebuilt(), tc.reason) {
				t.Errorf("Rebuilt() = %q, want a reason with %q", c.Rebuilt(), tc.reason)
			}
			if !strings.Contains(logs.String(), "scan cache rebuilt") {
				t.Errorf("no warning logged: %q", logs.String())
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Errorf("the bad store was not kept aside: %v", err)
			}
			res, err := scan.New(scan.Options{Cache: c}).Scan(ctxT(t), repo, scan.Need{Match: func(string) bool { return true }, BuildTime: true})
			if err != nil || !res.Images["v1"].Created.Equal(base) {
				t.Errorf("scan on the rebuilt cache: %+v, %v", res, err)
			}
		})
	}
}

func TestCacheLockedByAnotherProcessIsAnError(t *testing.T) {
	dir := t.TempDir()
	c, err := scan.OpenCache(dir, scan.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// bbolt's flock is per open file description, so a second open in-process contends.
	if _, err := scan.OpenCache(dir, scan.CacheOptions{}); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want locked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %s for the lock", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(dir, "scan.db.corrupt")); err == nil {
		t.Error("a locked store was treated as corrupt")
	}
}

// TestCacheIsBounded: past MaxRepos the repositories listed longest ago are dropped.
func TestCacheIsBounded(t *testing.T) {
	host, stop := testenv.StartInProcessRegistry()
	defer stop()
	dir := t.TempDir()
	c, err := scan.OpenCache(dir, scan.CacheOptions{MaxRepos: 5})
	if err != nil {
		t.Fatal(err)
	}
	sc := scan.New(scan.Options{Cache: c})
	for i := range 12 {
		r := fmt.Sprintf("app%d", i)
		push(t, host, authn.Anonymous, r, "v1", testenv.ImageSpec{Created: base})
		if _, err := sc.Scan(ctxT(t), repoOf(t, host, r), scan.Need{Match: func(string) bool { return true }, BuildTime: true}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	db, err := bolt.Open(filepath.Join(dir, "scan.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		repos, meta := tx.Bucket([]byte("repos")).Stats().KeyN, tx.Bucket([]byte("meta")).Stats().KeyN
		if repos > 5 || repos == 0 {
			t.Errorf("%d repositories cached, want 1..5", repos)
		}
		if meta > repos {
			t.Errorf("%d metadata records for %d repositories of one image each", meta, repos)
		}
		if tx.Bucket([]byte("repos")).Get([]byte(host+"/app11")) == nil {
			t.Error("the newest repository was evicted")
		}
		return nil
	})
}
