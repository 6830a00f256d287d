package scan_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"

	"imagebot.dev/imagebot/internal/scan"
	"imagebot.dev/imagebot/internal/testenv"
)

// paginate makes the proxy page the real registry's tag list as Docker Hub and Quay do
// (the distribution registry 2.8 ignores n=): n tags after last and a Link to the next
// page; n above maxN gets an error body, as Quay answers n=1000 (the status stays 200 here,
// so the scanner must notice that the body has no "tags").
func paginate(maxN int) *testenv.Fault {
	return &testenv.Fault{Edit: func(req *http.Request, h http.Header, body []byte) []byte {
		var doc struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if json.Unmarshal(body, &doc) != nil {
			return body
		}
		sort.Strings(doc.Tags)
		q := req.URL.Query()
		n, _ := strconv.Atoi(q.Get("n"))
		if n <= 0 {
			n = 2 // this registry's default page
		}
		if n > maxN {
			return []byte(`{"errors":[{"code":"PAGINATION_NUMBER_INVALID"}]}`)
		}
		i := sort.SearchStrings(doc.Tags, q.Get("last"))
		if q.Get("last") != "" && i < len(doc.Tags) && doc.Tags[i] == q.Get("last") {
			i++
		}
		page := doc.Tags[i:min(len(doc.Tags), i+n)]
		if i+n < len(doc.Tags) {
			next := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
			h.Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, req.URL.Path, next.Encode()))
		}
		out, _ := json.Marshal(map[string]any{"name": doc.Name, "tags": page})
		return out
	}}
}

func TestPagination(t *testing.T) {
	env := testenv.New(t, testenv.Options{Registry: true})
	reg := env.Registry
	if _, err := reg.Push(ctxT(t), "paged", "t0", testenv.ImageSpec{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 7; i++ {
		retag(t, reg.Host, reg.Auth(), "paged", "t0", fmt.Sprintf("t%d", i))
	}
	proxy := testenv.StartFaultProxy(reg.Host)
	defer proxy.Close()
	repo := repoOf(t, proxy.Host, "paged")
	list := pathHas("/tags/list")
	for _, tc := range []struct {
		name      string
		opts      scan.Options
		wantPages int
	}{
		{"registry default page", scan.Options{}, 4},
		{"n=3", scan.Options{PageSize: 3}, 3},
		{"n=100 for this host", scan.Options{PageSize: 1000, Hosts: map[string]scan.HostOptions{proxy.Host: {PageSize: 100}}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Reset()
			proxy.Add(&testenv.FaultRule{Match: list, Then: paginate(100)})
			res, err := scan.New(tc.opts).Scan(ctxT(t), repo, scan.Need{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tags) != 7 || res.Tags[0] != "t0" || res.Tags[6] != "t6" {
				t.Errorf("tags = %v", res.Tags)
			}
			if n := proxy.Count("/tags/list"); n != tc.wantPages {
				t.Errorf("%d pages, want %d: %+v", n, tc.wantPages, proxy.Requests())
			}
		})
	}
	t.Run("page size the registry rejects", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(&testenv.FaultRule{Match: list, Then: paginate(100)})
		_, err := scan.New(scan.Options{PageSize: 1000}).Scan(ctxT(t), repo, scan.Need{})
		if !errors.Is(err, scan.ErrBadResponse) {
			t.Fatalf("err = %v, want ErrBadResponse", err)
		}
	})
	t.Run("cap in the middle of the pages", func(t *testing.T) {
		proxy.Reset()
		proxy.Add(&testenv.FaultRule{Match: list, Then: paginate(100)})
		_, err := scan.New(scan.Options{PageSize: 2, TagCap: 5}).Scan(ctxT(t), repo, scan.Need{})
		if !errors.Is(err, scan.ErrTagCap) {
			t.Fatalf("7 tags under a cap of 5: %v, want ErrTagCap", err)
		}
		if n := proxy.Count("/tags/list"); n != 3 {
			t.Errorf("%d pages read, want 3 (stop at the cap)", n)
		}
	})
}
