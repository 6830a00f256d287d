package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// cacheVersion is the store's format; a store of another version is rebuilt.
const cacheVersion = "imagebot-scan-1"

// DefaultMaxRepos bounds the persistent cache: past it, the repositories listed longest ago
// are dropped (with the metadata only they referenced).
const DefaultMaxRepos = 10000

var (
	bucketInfo  = []byte("info")
	bucketRepos = []byte("repos")
	bucketMeta  = []byte("meta")
	keyVersion  = []byte("version")
	keyClean    = []byte("clean")
)

// repoRecord is what the cache keeps per repository: its last good listing and the digests
// of the tags that were described.
type repoRecord struct {
	ListedAt int64                `json:"t"`
	Tags     []string             `json:"tags"`
	Digests  map[string]tagDigest `json:"d,omitempty"`
}

type tagDigest struct {
	Digest  string `json:"d"`
	Checked int64  `json:"c"` // unix seconds of the last HEAD or GET that saw it
}

// metaRecord is what a digest tells: immutable, so cached forever (while referenced).
type metaRecord struct {
	Created   int64  `json:"c"` // unix nanoseconds; 0 when the config has none
	MediaType string `json:"m,omitempty"`
	// Err is why the image cannot be described, when its content decided it (see
	// contentError); NotFound when that reason is a missing part (an index without the
	// platform's image) rather than a bad one.
	Err      string `json:"e,omitempty"`
	NotFound bool   `json:"nf,omitempty"`
	key      string // where describe caches it (the digest, "DIGEST@PLATFORM" for an index); not stored
}

// store is the scanner's view of a cache: bbolt on disk, or memory.
type store interface {
	repo(key string) (*repoRecord, error)
	meta(key string) (metaRecord, bool, error)
	// commit writes a repository's record (nil: unchanged) and new metadata in one go.
	commit(key string, rec *repoRecord, metas map[string]metaRecord) error
}

// CacheOptions configures OpenCache.
type CacheOptions struct {
	MaxRepos int          // default DefaultMaxRepos
	Logger   *slog.Logger // receives the warning when a store is rebuilt; nil: none
}

// Cache is the persistent store of tags per repository and metadata per digest, a bbolt
// file "scan.db" in a data directory. It is safe for concurrent use; one process at a time
// may open a directory.
type Cache struct {
	path     string
	maxRepos int
	log      *slog.Logger

	mu      sync.Mutex // guards db when rebuilding and repos
	db      *bolt.DB
	repos   int
	rebuilt string
}

// OpenCache opens (or creates) the cache in dir. A corrupt store, a store of another format
// or one that fails its consistency check after an unclean shutdown is moved aside to
// scan.db.corrupt and rebuilt empty, with a warning on the logger; only a store locked by
// another process is an error.
func OpenCache(dir string, opts CacheOptions) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open scan cache: %w", err)
	}
	c := &Cache{path: filepath.Join(dir, "scan.db"), maxRepos: opts.MaxRepos, log: opts.Logger}
	if c.maxRepos <= 0 {
		c.maxRepos = DefaultMaxRepos
	}
	db, why, err := openValid(c.path)
	if err != nil {
		return nil, err
	}
	if why != "" {
		c.rebuilt = why
		if c.log != nil {
			c.log.Warn("scan cache rebuilt", "path", c.path, "reason", why)
		}
		_ = os.Rename(c.path, c.path+".corrupt")
		if db, why, err = openValid(c.path); err != nil || why != "" {
			return nil, fmt.Errorf("open scan cache %s: cannot rebuild: %v%s", c.path, err, why)
		}
	}
	c.db = db
	if err := c.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open scan cache %s: %w", c.path, err)
	}
	return c, nil
}

// openValid opens path; why is non-empty when the file exists but cannot be used.
func openValid(path string) (db *bolt.DB, why string, err error) {
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some corruptions
			if db != nil {
				_ = db.Close()
			}
			db, why, err = nil, fmt.Sprintf("corrupt: %v", r), nil
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, "", fmt.Errorf("open scan cache %s: locked by another process", path)
	}
	if err != nil {
		return nil, err.Error(), nil
	}
	err = db.View(func(tx *bolt.Tx) error {
		info := tx.Bucket(bucketInfo)
		if info == nil {
			if tx.Bucket(bucketRepos) != nil || tx.Bucket(bucketMeta) != nil {
				return errors.New("no format version")
			}
			return nil // new file
		}
		if v := string(info.Get(keyVersion)); v != cacheVersion {
			return fmt.Errorf("format %q, want %q", v, cacheVersion)
		}
		if string(info.Get(keyClean)) != "1" {
			for cerr := range tx.Check() {
				return fmt.Errorf("consistency check after an unclean shutdown: %w", cerr)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err.Error(), nil
	}
	return db, "", nil
}

// init creates the buckets, marks the store in use and drops unreferenced metadata.
func (c *Cache) init() error {
	return c.db.Update(func(tx *bolt.Tx) error {
		info, err := tx.CreateBucketIfNotExists(bucketInfo)
		if err != nil {
			return err
		}
		if err := info.Put(keyVersion, []byte(cacheVersion)); err != nil {
			return err
		}
		if err := info.Put(keyClean, []byte("0")); err != nil {
			return err
		}
		repos, err := tx.CreateBucketIfNotExists(bucketRepos)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		c.repos = repos.Stats().KeyN
		return sweepMeta(repos, meta)
	})
}

// sweepMeta deletes metadata no repository record references.
func sweepMeta(repos, meta *bolt.Bucket) error {
	live := map[string]bool{}
	err := repos.ForEach(func(_, v []byte) error {
		var r repoRecord
		if json.Unmarshal(v, &r) == nil {
			for _, d := range r.Digests {
				live[d.Digest] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var dead [][]byte
	err = meta.ForEach(func(k, _ []byte) error {
		d, _, _ := strings.Cut(string(k), "@")
		if !live[d] {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := meta.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Rebuilt says why the store was rebuilt when it was opened ("" when it was not).
func (c *Cache) Rebuilt() string { return c.rebuilt }

// Close marks the store cleanly closed and closes it.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInfo).Put(keyClean, []byte("1")) })
	if cerr := c.db.Close(); err == nil {
		err = cerr
	}
	c.db = nil
	return err
}

// guard turns a bbolt panic (a corruption found while reading) into an error.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("scan cache corrupt: %v", r)
	}
}

func (c *Cache) repo(key string) (rec *repoRecord, err error) {
	defer guard(&err)
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRepos).Get([]byte(key))
		if v == nil {
			return nil
		}
		rec = new(repoRecord)
		if json.Unmarshal(v, rec) != nil {
			rec = nil // unreadable: treat as absent, the next commit replaces it
		}
		return nil
	})
	return rec, err
}

func (c *Cache) meta(key string) (m metaRecord, ok bool, err error) {
	defer guard(&err)
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte(key))
		if v != nil && json.Unmarshal(v, &m) == nil {
			ok = true
		}
		return nil
	})
	return m, ok, err
}

func (c *Cache) commit(key string, rec *repoRecord, metas map[string]metaRecord) (err error) {
	if rec == nil && len(metas) == 0 {
		return nil
	}
	defer guard(&err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return errors.New("scan cache closed")
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for k, m := range metas {
			v, _ := json.Marshal(m)
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		if rec == nil {
			return nil
		}
		repos := tx.Bucket(bucketRepos)
		if repos.Get([]byte(key)) == nil {
			c.repos++
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := repos.Put([]byte(key), v); err != nil {
			return err
		}
		if c.repos > c.maxRepos {
			return c.evict(repos, meta)
		}
		return nil
	})
}

// evict drops the tenth of repositories listed longest ago, then unreferenced metadata.
func (c *Cache) evict(repos, meta *bolt.Bucket) error {
	type aged struct {
		key string
		t   int64
	}
	var all []aged
	err := repos.ForEach(func(k, v []byte) error {
		var r struct {
			T int64 `json:"t"`
		}
		_ = json.Unmarshal(v, &r)
		all = append(all, aged{string(k), r.T})
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t })
	n := len(all) - c.maxRepos*9/10
	for _, a := range all[:max(0, n)] {
		if err := repos.Delete([]byte(a.key)); err != nil {
			return err
		}
		c.repos--
	}
	return sweepMeta(repos, meta)
}

// memStore is the store used without a Cache: the same data in memory.
type memStore struct {
	mu    sync.Mutex
	repos map[string]*repoRecord
	metas map[string]metaRecord
}

func newMemStore() *memStore {
	return &memStore{repos: map[string]*repoRecord{}, metas: map[string]metaRecord{}}
}

func (m *memStore) repo(key string) (*repoRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repos[key], nil
}

func (m *memStore) meta(key string) (metaRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.metas[key]
	return r, ok, nil
}

func (m *memStore) commit(key string, rec *repoRecord, metas map[string]metaRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec != nil {
		m.repos[key] = rec
	}
	for k, v := range metas {
		m.metas[k] = v
	}
	return nil
}
